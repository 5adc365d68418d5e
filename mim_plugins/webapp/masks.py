"""The web demo's masking strategies: one image's hidden and predicted patches.

Every strategy returns two bool ``(L,)`` masks on the raster-order patch grid, True = in the set:
``hidden`` (removed from the encoder input) and ``predicted`` (what the reconstruction shows).
They are the same mask except for SemanticMIM's *separate masks*, where both are drawn
independently, each with its own ratio (a predicted patch may be one the encoder sees). The
masks come from the mask generators training uses (``RandomMaskGenerator``,
``BlockMaskGenerator``, ``SemanticPartMaskGenerator``), each draw from one seeded
``torch.Generator``.
"""
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ..masking import num_masked
from ..models.mask_generators import (BlockMaskGenerator, RandomMaskGenerator,
                                      SemanticPartMaskGenerator)
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
        strategy: one of :data:`STRATEGIES`: MAE's uniform ``random`` (``RandomMaskGenerator``);
            BEiT-style ``block`` (``BlockMaskGenerator``, exact count, blocks of at least
            :func:`block_min_patches`); SemMAE's ``part-guided`` (``SemanticPartMaskGenerator``
            at the constant λ ``lam``, needs ``part_ids`` (h, w)); ``separate``: two
            independent random masks, ``hidden`` at ``mask_ratio`` and ``predicted`` at
            ``predicted_ratio``.
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
    ids = None
    if strategy == 'part-guided':
        if part_ids is None:
            raise UserInputError('Part-guided masks need a part map of the image. Fix: choose '
                                 'another strategy, or give part centroids.')
        if not 0.0 <= lam <= 1.0:
            raise UserInputError(f'λ = {lam} is outside [0, 1]. Fix: choose λ from 1 '
                                 '(intra-part) to 0 (inter-part).')
        ids = torch.from_numpy(np.asarray(part_ids, dtype=np.int64)).view(1, *grid)
        masker = SemanticPartMaskGenerator(mask_ratio, lam_schedule='constant',
                                           lam_value=float(lam))
    elif strategy == 'block':
        masker = BlockMaskGenerator(mask_ratio, grid, min_block=block_min_patches(length))
    else:
        masker = RandomMaskGenerator(mask_ratio, grid)
    hidden = masker(1, ids, None, generator).flatten()
    if strategy != 'separate':
        return hidden, hidden.clone()
    predicted = RandomMaskGenerator(predicted_ratio, grid)(1, None, None, generator).flatten()
    return hidden, predicted
