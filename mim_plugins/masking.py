"""Patch masks for masked image modeling, as pure torch functions.

Every mask is a ``torch.bool`` tensor of shape ``(B, L)`` (``L`` patches in raster order) where
``True`` means *masked* (removed from the encoder input, predicted by the decoder), as in MAE.
All masks keep exactly ``L - num_masked(L, r)`` visible patches in every image, so a batched
encoder sees the same number of tokens per image.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

LAMBDA_KINDS = ('square', 'linear', 'cosine', 'constant')


def _check_ratio(mask_ratio: float) -> None:
    if not 0.0 < mask_ratio < 1.0:  # also rejects NaN
        raise ValueError(f'mask_ratio must lie in the open interval (0, 1), got {mask_ratio!r}')


def num_masked(num_patches: int, mask_ratio: float) -> int:
    """Masked patches per image: ``L - int(L * (1 - r))`` (MAE keeps ``int(L * (1 - r))``).

    147 for ``L=196, r=0.75``. Raises ``ValueError`` if ``r`` is outside (0, 1) or no patch
    would stay visible (an encoder cannot run on zero tokens).
    """
    _check_ratio(mask_ratio)
    keep = int(num_patches * (1 - mask_ratio))
    if keep < 1:
        raise ValueError(f'mask_ratio={mask_ratio} leaves no visible patch out of {num_patches}')
    return num_patches - keep


def random_mask(batch: int, num_patches: int, mask_ratio: float,
                generator: Optional[torch.Generator] = None,
                device: Optional[torch.device] = None) -> Tensor:
    """MAE random masking: a bool tensor ``(batch, num_patches)``, ``True`` = masked.

    Each row masks exactly ``num_masked(num_patches, mask_ratio)`` patches, uniformly at random
    (argsort of uniform noise; the ``int(L * (1 - r))`` lowest-noise patches stay visible).
    ``generator`` must live on ``device``.
    """
    keep = num_patches - num_masked(num_patches, mask_ratio)
    noise = torch.rand(batch, num_patches, generator=generator, device=device)
    masked_ids = noise.argsort(dim=1)[:, keep:]
    return torch.zeros(batch, num_patches, dtype=torch.bool, device=noise.device).scatter_(
        1, masked_ids, True)


def intra_part_counts(part_sizes: Tensor, mask_ratio: float) -> Tensor:
    """SemMAE intra-part counts ``c1_p = round(n_p·r)``: int64, shaped like ``part_sizes``.

    ``part_sizes`` is an integer tensor ``(..., K)``. As in the official code, the product is
    float32 and ``torch.round`` rounds halves to even (6 patches at r = 0.75 give 4, 10 give 8).
    Its dtype is that of its preprocessed inputs; float32 is assumed here (float64 gives the
    same counts on every case of the golden fixture).
    """
    _check_ratio(mask_ratio)
    return torch.round(part_sizes.float() * mask_ratio).long()


def inter_part_counts(part_sizes: Tensor, mask_ratio: float, order: Tensor) -> Tensor:
    """SemMAE inter-part counts ``c2_p``: int64 ``(B, K)``, for integer ``part_sizes`` and
    ``order``, both ``(B, K)``.

    The parts are visited in ``order`` (row ``b``: the part ids in visiting order) against the
    float budget ``L·r`` (117.6 at L = 196, r = 0.6): part ``p`` gets
    ``min(n_p, max(0, trunc(L·r - patches of the parts visited before p)))``, so whole parts are
    masked while the budget lasts, the part crossing it gets the truncated remainder and the
    later ones 0 (absent parts take 0 wherever they sit). As in the official code, ``L·r`` is
    rounded to float32 and the remainders are computed in float32. ``Σ c2_p = floor(L·r)``, one
    short of :func:`num_masked` when ``L·r`` is fractional; :func:`semantic_part_mask` restores
    the fixed total.
    """
    _check_ratio(mask_ratio)
    part_sizes = part_sizes.long()
    ordered = part_sizes.gather(1, order)
    budget = (part_sizes.sum(1, keepdim=True).double() * mask_ratio).float()
    # The official float32 steps, (L·r - cumsum) + n_p, so that even float rounding agrees;
    # .long() truncates toward zero like the official cast (negatives are clamped to 0).
    left = ((budget - ordered.cumsum(1).float()) + ordered.float()).long().clamp(min=0)
    return torch.empty_like(part_sizes).scatter_(1, order, torch.minimum(left, ordered))


def part_mask_counts(part_sizes: Tensor, mask_ratio: float, lam: float, order: Tensor) -> Tensor:
    """SemMAE per-part masked counts, before the fixed-total correction.

    Args:
        part_sizes: integer tensor ``(B, K)`` or ``(K,)``: ``n_p``, patches of part ``p`` (0 for
            an absent part). A row sums to ``L``.
        mask_ratio: ``r`` in (0, 1).
        lam: ``λ`` in [0, 1]; 1 = intra-part masking, 0 = inter-part masking.
        order: ``(B, K)`` or ``(K,)``, each row a permutation of ``range(K)``: the shuffled order
            in which inter-part masking takes whole parts.

    Returns:
        int64 tensor shaped like ``part_sizes``: ``c_p = round(λ·c1_p + (1-λ)·c2_p)`` with
        ``c1_p`` of :func:`intra_part_counts` and ``c2_p`` of :func:`inter_part_counts`, the
        arithmetic of the official ``random_masking_setting3`` exactly: float32, ``torch.round``
        (halves to even). Every ``0 <= c_p <= n_p``; ``Σ c_p`` may differ from
        :func:`num_masked` by a few patches.
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f'lam must lie in [0, 1], got {lam!r}')
    sizes = torch.atleast_2d(part_sizes).long()
    order = torch.atleast_2d(order).to(sizes.device)
    intra = intra_part_counts(sizes, mask_ratio).float()
    inter = inter_part_counts(sizes, mask_ratio, order).float()
    # Python-float scalars times float32 tensors: float32 products, as in the official code.
    counts = torch.round(lam * intra + (1 - lam) * inter).long()
    return counts.reshape(part_sizes.shape)


def semantic_part_mask(part_ids: Tensor, mask_ratio: float, lam: float,
                       generator: Optional[torch.Generator] = None) -> Tensor:
    """SemMAE semantic-guided mask: a bool tensor ``(B, L)``, ``True`` = masked.

    Args:
        part_ids: integer tensor ``(B, L)`` (or ``(L,)``, treated as ``(1, L)``) of non-negative
            part ids per patch; ids need not be contiguous and parts may be absent from an image.
        mask_ratio: ``r`` in (0, 1).
        lam: ``λ`` in [0, 1], see :func:`lambda_schedule`.
        generator: optional ``torch.Generator`` on ``part_ids.device``, for reproducible masks.

    Per image: the parts are shuffled uniformly at random, :func:`part_mask_counts` gives ``c_p``
    (the official arithmetic exactly), and ``c_p`` patches of part ``p`` are selected uniformly at
    random inside the part. The mask then holds exactly ``num_masked(L, r)`` patches (147 of 196
    at r=0.75, 118 at r=0.6), as the official code: if more were selected, a uniformly random
    subset of the selected patches of that size is masked (the others stay visible); if fewer,
    all selected patches are masked plus the deficit drawn uniformly at random from the
    unselected patches. This fix-up is our rule: the official one leaves it to the tie order of
    a non-stable argsort (implementation-defined). Our per-part means of the final mask agree
    with the official ones within 0.6 patch plus 4 standard errors
    (:mod:`mim_plugins.fidelity.semmae`).
    """
    dtype = part_ids.dtype
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise TypeError(f'part_ids must be an integer tensor, got dtype {dtype}')
    if part_ids.ndim not in (1, 2):
        raise ValueError(f'part_ids must have shape (L,) or (B, L), got {tuple(part_ids.shape)}')
    total = num_masked(part_ids.shape[-1], mask_ratio)
    if part_ids.min() < 0:
        raise ValueError('part_ids must be non-negative')
    ids = torch.atleast_2d(part_ids).long()
    batch, length = ids.shape
    dev = ids.device
    # Batch-wide compact ids 0..K-1 let every image share one (B, K) count table.
    _, part = torch.unique(ids, return_inverse=True)
    num_parts = int(part.max()) + 1
    sizes = torch.zeros(batch, num_parts, dtype=torch.long, device=dev).scatter_add_(
        1, part, torch.ones_like(part))
    order = torch.rand(batch, num_parts, generator=generator, device=dev).argsort(dim=1)
    counts = part_mask_counts(sizes, mask_ratio, lam, order)
    # Both random choices below are flat sorts of int64 keys (row, group, 31 random bits): one
    # sort for the whole batch, and integer keys sort several times faster than floats on CPU.
    # Ties of the random bits only fix an arbitrary order among equals; counts stay exact.
    row = torch.arange(batch, device=dev).unsqueeze(1)

    def random_bits() -> Tensor:
        return torch.randint(0, 2 ** 31, (batch, length), generator=generator, device=dev)

    # Sorting by (image, part, random) shuffles each part of each image in place; a patch's
    # random rank inside its part is its sorted position minus where its part starts.
    group = row * num_parts + part
    perm = ((group << 31) | random_bits()).flatten().argsort()
    group_start = (sizes.cumsum(1) - sizes + row * length).flatten()
    sorted_rank = torch.arange(batch * length, device=dev) - group_start[group.flatten()[perm]]
    rank = torch.empty_like(perm).scatter_(0, perm, sorted_rank)
    selected = rank.view(batch, length) < counts.gather(1, part)
    # Sorting by (image, selected, random) puts each image's selected patches last in random
    # order: its last `total` entries are a random subset of the selection, or all of it plus
    # random unselected patches.
    perm = ((((row << 1) | selected.long()) << 31) | random_bits()).flatten().argsort()
    mask = torch.zeros(batch * length, dtype=torch.bool, device=dev)
    mask[perm.view(batch, length)[:, length - total:].flatten()] = True
    return mask.view(batch, length)


def mask_to_indices(mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Split a bool mask ``(B, L)`` into ``(ids_keep, ids_masked)``, int64 ``(B, L-M)`` and
    ``(B, M)``, each sorted ascending; every row must mask the same ``M`` patches.

    MAE's ``ids_restore`` is ``torch.cat([ids_keep, ids_masked], 1).argsort(1)``.
    """
    if mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(f'mask must be a bool (B, L) tensor, got {mask.dtype} {tuple(mask.shape)}')
    per_row = mask.sum(1)
    if (per_row != per_row[0]).any():
        raise ValueError(f'every row must mask the same number of patches, got {per_row.tolist()}')
    keep = mask.shape[1] - int(per_row[0])
    # A stable sort of 0/1 lists visible indices first, each group in ascending order.
    ids = mask.to(torch.uint8).sort(dim=1, stable=True).indices
    return ids[:, :keep], ids[:, keep:]


def lambda_schedule(epoch: int, max_epochs: int, kind: str = 'square', value: float = 1.0) -> float:
    """SemMAE's intra→inter weight ``λ`` for a 0-based ``epoch`` of ``max_epochs`` (``E``).

    With ``t = (epoch + 1) / E`` clamped to [0, 1]: ``'square'`` (SemMAE) ``1 - t²``,
    ``'linear'`` ``1 - t``, ``'cosine'`` ``0.5·(1 + cos(π·t))``, ``'constant'`` ``value``; the
    result is clamped to [0, 1]. Every kind but ``'constant'`` reaches 0 (pure inter-part) at
    ``epoch = E - 1`` and stays there (clamping ``t`` keeps the cosine from rising again).
    """
    if max_epochs < 1:
        raise ValueError(f'max_epochs must be >= 1, got {max_epochs}')
    t = min(1.0, max(0.0, (epoch + 1) / max_epochs))
    if kind == 'square':
        lam = 1 - t ** 2
    elif kind == 'linear':
        lam = 1 - t
    elif kind == 'cosine':
        lam = 0.5 * (1 + math.cos(math.pi * t))
    elif kind == 'constant':
        lam = value
    else:
        raise ValueError(f'unknown lambda schedule kind {kind!r}; valid kinds: {LAMBDA_KINDS}')
    return min(1.0, max(0.0, lam))


def block_mask(batch: int, grid: Tuple[int, int], mask_ratio: float, min_block: int = 16,
               max_block: Optional[int] = None, min_aspect: float = 0.3,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """BEiT-style block-wise mask with an exact count: a bool tensor ``(batch, H*W)``.

    Per image, rectangles are drawn until ``num_masked(H*W, r)`` patches are covered: area
    uniform in ``[min_block, min(max_block, still needed)]`` patches (smaller once fewer than
    ``min_block`` are needed; ``max_block`` defaults to the target count), log-uniform aspect
    ratio in ``[min_aspect, 1/min_aspect]``, uniform position; a rectangle that does not fit the
    grid or adds nothing is redrawn, and one that overshoots the target (rounding of its sides)
    masks a random subset of its new patches. After 100 fruitless draws in a row (a grid too
    small for ``min_block``) the rest is filled uniformly at random. Unlike BEiT, whose counts
    vary per image, every row masks exactly the same number of patches, so batched encoders that
    drop the masked tokens (MAE, the SemanticMIM bottleneck) can use block masks too. CPU only.
    """
    h, w = grid
    total = num_masked(h * w, mask_ratio)
    if min_block < 1 or (max_block is not None and max_block < min_block):
        raise ValueError(f'need 1 <= min_block <= max_block, got {min_block}, {max_block}')
    max_block = total if max_block is None else min(max_block, total)
    if not 0.0 < min_aspect <= 1.0:
        raise ValueError(f'min_aspect must lie in (0, 1], got {min_aspect!r}')
    log_aspect = (math.log(min_aspect), -math.log(min_aspect))

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    def randint(hi: int) -> int:
        return int(torch.randint(hi, (), generator=generator))

    masks = torch.zeros(batch, h, w, dtype=torch.bool)
    for mask in masks:
        count, misses = 0, 0
        while count < total and misses < 100:
            upper = min(max_block, total - count)
            area = uniform(min(min_block, upper), upper)
            aspect = math.exp(uniform(*log_aspect))
            bh, bw = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if not (1 <= bh <= h and 1 <= bw <= w):
                misses += 1
                continue
            top, left = randint(h - bh + 1), randint(w - bw + 1)
            new = (~mask[top:top + bh, left:left + bw]).nonzero() + torch.tensor([top, left])
            if len(new) == 0:
                misses += 1
                continue
            misses = 0
            new = new[torch.randperm(len(new), generator=generator)[:total - count]]
            mask[new[:, 0], new[:, 1]] = True
            count += len(new)
        if count < total:
            free = (~mask.flatten()).nonzero().squeeze(1)
            pick = torch.randperm(len(free), generator=generator)[:total - count]
            mask.view(-1)[free[pick]] = True
    return masks.flatten(1)
