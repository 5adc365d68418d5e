"""Streaming mini-batch k-means as pure torch functions (Sculley, "Web-scale k-means", 2010).

The state is ``(centroids (K, D), counts (K,))``: ``counts[k]`` is how many points centre ``k``
has absorbed so far. Each mini-batch moves every centre to the running mean of all the points
ever assigned to it, so memory is ``O(K * D)`` whatever the number of points streamed through.
"""
from typing import Optional, Tuple

import torch


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) squared Euclidean distances (clamped at 0 against rounding)."""
    dist = (x * x).sum(1, keepdim=True) - 2 * x @ centroids.T + (centroids * centroids).sum(1)
    return dist.clamp_min_(0)


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N,) int64: the index of each point's nearest centre."""
    return squared_distances(x, centroids).argmin(1)


def kmeans_plus_plus(x: torch.Tensor, k: int,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007): (N, D) points -> (K, D) initial centres.

    The first centre is a uniformly drawn point; every next one is drawn with probability
    proportional to its squared distance to the nearest centre chosen so far, which spreads the
    centres over the clusters. Needs ``N >= K``; if fewer than K distinct points exist, the
    remaining centres repeat chosen points (they then absorb nothing until reseeded by data).
    """
    if x.shape[0] < k:
        raise ValueError(f'k-means++ needs at least k={k} points, got {x.shape[0]}')
    first = torch.randint(x.shape[0], (1,), generator=generator, device='cpu').item()
    centres = [x[first]]
    nearest = squared_distances(x, x[first:first + 1]).squeeze(1)
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 0:  # every point coincides with a chosen centre
            idx = torch.randint(x.shape[0], (1,), generator=generator, device='cpu').item()
        else:
            probs = (nearest / total).cpu()
            idx = torch.multinomial(probs, 1, generator=generator).item()
        centres.append(x[idx])
        nearest = torch.minimum(nearest, squared_distances(x, x[idx:idx + 1]).squeeze(1))
    return torch.stack(centres)


def minibatch_update(centroids: torch.Tensor, counts: torch.Tensor,
                     x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """One mini-batch k-means step: assign ``x`` (N, D) to ``centroids`` (K, D), then move each
    centre to the mean of every point it has absorbed, old (``counts`` (K,), float) and new::

        c_k <- (counts_k * c_k + sum of the batch points nearest c_k) / (counts_k + m_k)

    which is Sculley's per-point update with learning rate 1 / count, applied to a batch at once.
    Centres that receive no point are unchanged. Returns new ``(centroids, counts)``.
    """
    labels = assign(x, centroids)
    k = centroids.shape[0]
    m = torch.bincount(labels, minlength=k).to(x.dtype)
    sums = torch.zeros_like(centroids).index_add_(0, labels, x)
    new_counts = counts + m
    moved = m > 0
    new_centroids = centroids.clone()
    new_centroids[moved] = ((counts[moved, None] * centroids[moved] + sums[moved])
                            / new_counts[moved, None])
    return new_centroids, new_counts


def order_by_count(centroids: torch.Tensor,
                   counts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Renumber the centres by decreasing count (ties: original order), so part 0 is the most
    common kind of patch. k-means ids are otherwise arbitrary; this makes them reproducible
    labels to read in figures."""
    order = torch.argsort(-counts, stable=True)
    return centroids[order], counts[order]
