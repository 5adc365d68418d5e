"""The two losses of SemMAE stage 1 (Figure 1): the diversity constraint ``L_d`` on the part
attention maps and the reconstruction loss ``L_r`` of the decoder. The figure names them; their
exact forms are ours (docs/semmae_stage1.md)."""
import torch
import torch.nn.functional as F

RECONSTRUCTION_LOSSES = ('mse', 'l1')


def diversity_loss(maps: torch.Tensor) -> torch.Tensor:
    """(B, N, h, w) attention maps -> scalar: the mean cosine similarity between the maps of
    two different parts of an image, averaged over the N(N-1) ordered pairs and the batch.

    0 when the parts cover disjoint places, 1 when every map has the same shape (e.g. all parts
    uniform, or one part everywhere and the others its faint copies). Needs N >= 2."""
    b, n = maps.shape[:2]
    if n < 2:
        raise ValueError(f'the diversity loss needs at least 2 parts, got {n}')
    unit = F.normalize(maps.flatten(2), dim=2)  # (B, N, hw)
    gram = unit @ unit.transpose(1, 2)  # (B, N, N)
    off_diagonal = gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)
    return (off_diagonal / (n * (n - 1))).mean()


def reconstruction_loss(pred: torch.Tensor, image: torch.Tensor,
                        kind: str = 'mse') -> torch.Tensor:
    """(B, 3, h', w') prediction, (B, 3, H, W) normalised image -> scalar ``L_r``: the mean
    squared (``'mse'``) or absolute (``'l1'``) error against the image area-averaged to the
    prediction's size (the decoder may stop below the input resolution)."""
    if kind not in RECONSTRUCTION_LOSSES:
        raise ValueError(f'kind must be one of {RECONSTRUCTION_LOSSES}, got {kind!r}')
    target = image
    if target.shape[-2:] != pred.shape[-2:]:
        target = F.adaptive_avg_pool2d(image, pred.shape[-2:])
    return F.mse_loss(pred, target) if kind == 'mse' else F.l1_loss(pred, target)
