"""The web demo's masking strategies: one image's hidden and predicted patches.

Every strategy returns two bool ``(L,)`` masks on the raster-order patch grid, True = in the set:
``hidden`` (removed from the encoder input) and ``predicted`` (what the reconstruction shows).
They are the same mask except for SemanticMIM's *separate masks*, where both are drawn
independently, each with its own ratio (a predicted patch may be one the encoder sees).
"""
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ..masking import block_mask, num_masked, random_mask, semantic_part_mask
from ..utils.errors import UserInputError

STRATEGIES = ('random', 'block', 'part-guided', 'separate')


def block_min_patches(num_patches: int) -> int:
    """BEiT's smallest block, 16 patches of a 14x14 grid, scaled to ``num_patches`` (4 of 7x7),
    so a small grid gets several blocks rather than one."""
    return max(1, round(16 * num_patches / 196))


def draw_masks(strategy: str, grid: Tuple[int, int], mask_ratio: float, seed: int,
               lam: float = 0.5, predicted_ratio: float = 0.75,
               part_ids: Optional[np.ndarray] = None) -> Tuple[Tensor, Tensor]:
    """``(hidden, predicted)``, bool ``(h * w,)`` each, for one image.

    Args:
        strategy: one of :data:`STRATEGIES`: MAE's uniform ``random``; BEiT-style ``block``
            (:func:`mim_plugins.masking.block_mask`, exact count); SemMAE's ``part-guided``
            (:func:`~mim_plugins.masking.semantic_part_mask` with ``lam``, needs ``part_ids``
            (h, w)); ``separate``: two independent random masks, ``hidden`` at ``mask_ratio``
            and ``predicted`` at ``predicted_ratio``.
        grid: (h, w) patch grid.
        mask_ratio: fraction hidden from the encoder, in (0, 1); the counts are
            :func:`~mim_plugins.masking.num_masked`'s.
        seed: every draw comes from one ``torch.Generator`` seeded with it.
    """
    if strategy not in STRATEGIES:
        raise UserInputError(f'Unknown masking strategy {strategy!r}. Fix: choose one of '
                             f'{", ".join(STRATEGIES)}.')
    length = grid[0] * grid[1]
    for name, ratio in (('mask ratio', mask_ratio), ('predicted ratio', predicted_ratio)):
        try:
            num_masked(length, ratio)
        except ValueError as exc:
            raise UserInputError(f'The {name} {ratio} does not fit the {grid[0]}x{grid[1]} patch '
                                 f'grid ({exc}). Fix: choose a ratio that keeps at least one '
                                 'patch visible.') from None
    generator = torch.Generator().manual_seed(int(seed))
    if strategy == 'random':
        hidden = random_mask(1, length, mask_ratio, generator=generator)[0]
    elif strategy == 'block':
        hidden = block_mask(1, tuple(grid), mask_ratio, min_block=block_min_patches(length),
                            generator=generator)[0]
    elif strategy == 'part-guided':
        if part_ids is None:
            raise UserInputError('Part-guided masks need a part map of the image. Fix: choose '
                                 'another strategy, or give part centroids.')
        ids = torch.from_numpy(np.asarray(part_ids, dtype=np.int64)).flatten()
        hidden = semantic_part_mask(ids, mask_ratio, float(lam), generator=generator)[0]
    else:
        hidden = random_mask(1, length, mask_ratio, generator=generator)[0]
        predicted = random_mask(1, length, predicted_ratio, generator=generator)[0]
        return hidden, predicted
    return hidden, hidden.clone()
