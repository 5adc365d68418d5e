"""Mask generators drawn in the main process, and the data preprocessor that runs them.

Masks are one axis of a config: ``MaskingDataPreprocessor`` wraps any data preprocessor and, in
training, writes ``data_sample.mask`` (``(H, W)`` bool, ``True`` = masked), the field mmpretrain's
BEiT, MaskFeat and SimMIM read and our algorithms read through
:func:`~mim_plugins.models.sample_masks.sample_masks`; a model whose algorithm would ignore a
field written here is refused when it is built (:func:`~mim_plugins.models.sample_masks.
check_mask_fields`). Drawing
masks here rather than in the data pipeline matters for SemMAE: λ depends on the epoch, which
persistent dataloader workers (separate processes, alive across epochs) would never see updated.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseDataPreprocessor
from mmpretrain.registry import MODELS
from torch import Tensor

from ..masking import (LAMBDA_KINDS, block_mask, lambda_schedule, num_masked, random_mask,
                       semantic_part_mask)
from .mask_ratio import check_mask_ratio

# Where a generator's ratio sits in a config (the generators do not know which slot they fill).
RATIO_KEY = ('mask_ratio of {} (data_preprocessor.mask_generator or '
             'data_preprocessor.input_mask_generator)')


@MODELS.register_module()
class RandomMaskGenerator:
    """MAE random masking, ``num_masked(H*W, mask_ratio)`` patches per image.

    Args:
        mask_ratio: fraction of patches to mask, in (0, 1).
        grid: ``(H, W)`` patch grid (an int means square), used when the batch carries no part
            ids; with part ids the grid is theirs, so the same data serve both generators.
    """

    def __init__(self, mask_ratio: float = 0.75, grid: Union[int, Sequence[int]] = 14):
        self.grid = (grid, grid) if isinstance(grid, int) else tuple(grid)
        mask_ratio = check_mask_ratio(mask_ratio, RATIO_KEY.format(type(self).__name__))
        num_masked(self.grid[0] * self.grid[1], mask_ratio)  # and keeps a visible patch
        self.mask_ratio = mask_ratio

    def set_epoch(self, epoch: int, max_epochs: int) -> None:
        """Random masks do not depend on the epoch."""

    def __call__(self, batch_size: int, part_ids: Optional[Tensor] = None,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """A bool mask ``(batch_size, H, W)``; ``part_ids`` ``(B, H, W)`` only sets the grid;
        ``generator`` (on ``device``) makes the draw reproducible."""
        h, w = part_ids.shape[1:] if part_ids is not None else self.grid
        mask = random_mask(batch_size, h * w, self.mask_ratio, generator=generator,
                           device=device)
        return mask.view(batch_size, h, w)


@MODELS.register_module()
class BlockMaskGenerator(RandomMaskGenerator):
    """BEiT block-wise masking with an exact count per image, see :func:`mim_plugins.masking.
    block_mask` (``min_block`` is BEiT's ``min_num_patches``, ``max_block`` its
    ``max_num_patches``, ``min_aspect`` its ``min_aspect``). ``grid`` as for
    :class:`RandomMaskGenerator`. Drawn on the CPU, then moved to ``device``."""

    def __init__(self, mask_ratio: float = 0.4, grid: Union[int, Sequence[int]] = 14,
                 min_block: int = 16, max_block: Optional[int] = None, min_aspect: float = 0.3):
        super().__init__(mask_ratio, grid)
        self.block_args = dict(min_block=min_block, max_block=max_block, min_aspect=min_aspect)
        # validates the arguments now, on a private generator (the global RNG is left alone)
        block_mask(1, self.grid, mask_ratio, generator=torch.Generator().manual_seed(0),
                   **self.block_args)

    def __call__(self, batch_size: int, part_ids: Optional[Tensor] = None,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """A bool mask ``(batch_size, H, W)``; ``part_ids`` ``(B, H, W)`` only sets the grid;
        ``generator`` (a CPU one) makes the draw reproducible."""
        h, w = part_ids.shape[1:] if part_ids is not None else self.grid
        mask = block_mask(batch_size, (h, w), self.mask_ratio, generator=generator,
                          **self.block_args)
        return mask.view(batch_size, h, w).to(device)


@MODELS.register_module()
class SemanticPartMaskGenerator:
    """SemMAE semantic-guided masking, from intra-part (λ=1) to inter-part (λ=0).

    Args:
        mask_ratio: fraction of patches to mask, in (0, 1).
        lam_schedule: how λ follows the epoch, a kind of :func:`mim_plugins.masking.
            lambda_schedule`; ``'square'`` is SemMAE's ``1 - ((epoch + 1) / E)²``.
        lam_value: λ of the ``'constant'`` schedule.

    ``set_epoch`` (called by ``SemMAELambdaHook`` before every training epoch) fixes λ; until
    then only the ``'constant'`` schedule can draw masks.
    """

    def __init__(self, mask_ratio: float = 0.75, lam_schedule: str = 'square',
                 lam_value: float = 1.0):
        if lam_schedule not in LAMBDA_KINDS:
            raise ValueError(f'unknown lam_schedule {lam_schedule!r}; valid: {LAMBDA_KINDS}')
        if not 0.0 <= lam_value <= 1.0:
            raise ValueError(f'lam_value must lie in [0, 1], got {lam_value!r}')
        self.mask_ratio = check_mask_ratio(mask_ratio, RATIO_KEY.format(type(self).__name__))
        self.lam_schedule = lam_schedule
        self.lam_value = lam_value
        self.epoch: Optional[Tuple[int, int]] = None

    def set_epoch(self, epoch: int, max_epochs: int) -> None:
        """Use λ of 0-based ``epoch`` out of ``max_epochs`` from now on."""
        self.epoch = (epoch, max_epochs)

    @property
    def lam(self) -> float:
        """The current λ (1 = intra-part, 0 = inter-part)."""
        if self.lam_schedule == 'constant':
            return self.lam_value
        if self.epoch is None:
            raise RuntimeError(
                f"SemanticPartMaskGenerator(lam_schedule='{self.lam_schedule}') does not know "
                "the epoch, so λ is undefined. Fix: add custom_hooks = "
                "[dict(type='SemMAELambdaHook')] to the config (or call set_epoch), or use "
                "lam_schedule='constant'.")
        return lambda_schedule(*self.epoch, kind=self.lam_schedule)

    def __call__(self, batch_size: int, part_ids: Optional[Tensor] = None,
                 device: Optional[torch.device] = None,
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """A bool mask ``(B, H, W)`` from integer ``part_ids`` ``(B, H, W)``; see
        :func:`mim_plugins.masking.semantic_part_mask` for the exact counts. ``generator``
        (on ``device``) makes the draw reproducible."""
        if part_ids is None:
            raise ValueError(
                'SemanticPartMaskGenerator needs per-patch part ids, but the batch has none. '
                "Fix: add dict(type='LoadPartMap', ...) to the train pipeline and pack it with "
                "PackInputs(algorithm_keys=['part_ids']).")
        if part_ids.shape[0] != batch_size:
            raise ValueError(f'part_ids hold {part_ids.shape[0]} images, the batch {batch_size}')
        part_ids = part_ids.to(device)
        mask = semantic_part_mask(part_ids.flatten(1), self.mask_ratio, self.lam, generator)
        return mask.view(part_ids.shape)


def _build(generator: Union[dict, object, None]) -> Optional[object]:
    return MODELS.build(generator) if isinstance(generator, dict) else generator


@MODELS.register_module()
class MaskingDataPreprocessor(BaseDataPreprocessor):
    """Any data preprocessor, then a mask per training image from ``mask_generator``.

    Args:
        preprocessor: config (or module) of the wrapped preprocessor, e.g.
            ``dict(type='SelfSupDataPreprocessor', mean=..., std=..., to_rgb=True)``.
        mask_generator: config (or object) of a generator: ``generator(batch_size, part_ids,
            device)`` returns a bool ``(B, H, W)`` mask; ``set_epoch(epoch, max_epochs)``.
        input_mask_generator: optional second generator for SemanticMIM's *separate masks*: it
            draws, independently of ``mask``, the patches hidden from the encoder, written as
            ``input_mask``. ``mask`` then only says which patches are predicted (the loss).

    In training, every data sample gets ``mask``: bool ``(H, W)`` on the input device (and
    ``input_mask`` with ``input_mask_generator``). Part ids
    come from ``data_sample.part_ids`` (``(H, W)``, packed by ``PackInputs(algorithm_keys=
    ['part_ids'])``) when the samples carry them. Outside training nothing is added. Attributes
    not found here (``mean``, ``std``, ...) are the wrapped preprocessor's.
    """

    def __init__(self, preprocessor: Union[dict, BaseDataPreprocessor],
                 mask_generator: Union[dict, object],
                 input_mask_generator: Union[dict, object, None] = None):
        super().__init__()
        self.preprocessor = (MODELS.build(preprocessor) if isinstance(preprocessor, dict)
                             else preprocessor)
        self.mask_generator = _build(mask_generator)
        self.input_mask_generator = _build(input_mask_generator)

    def written_fields(self) -> Tuple[str, ...]:
        """The data-sample fields training batches get: ``mask`` (+ ``input_mask``)."""
        return ('mask', 'input_mask') if self.input_mask_generator is not None else ('mask', )

    @property
    def generators(self) -> List[object]:
        """The mask generators, for hooks that move their schedule (``set_epoch``)."""
        return [g for g in (self.mask_generator, self.input_mask_generator) if g is not None]

    def __getattr__(self, name: str):
        # Code written for the wrapped preprocessor (e.g. reading `mean`/`std` to un-normalise
        # images) keeps working on the wrapper.
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__('preprocessor'), name)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.preprocessor(data, training)
        if not training:
            return data
        samples = data.get('data_samples')
        if not samples:
            raise ValueError('MaskingDataPreprocessor writes masks into data samples, but the '
                             "batch has none. Fix: end the train pipeline with PackInputs.")
        if any('mask' in sample for sample in samples):
            raise ValueError(
                'The data samples already carry a mask (a mask generator in the data pipeline?) '
                'and MaskingDataPreprocessor would overwrite it. Fix: remove the pipeline mask '
                'generator; masks come from MaskingDataPreprocessor.mask_generator.')
        inputs = data['inputs']
        device = (inputs[0] if isinstance(inputs, (list, tuple)) else inputs).device
        part_ids = self._part_ids(samples)
        masks = self.mask_generator(len(samples), part_ids, device)
        for sample, mask in zip(samples, masks):
            sample.set_mask(mask)
        if self.input_mask_generator is not None:
            hidden = self.input_mask_generator(len(samples), part_ids, device)
            if hidden.shape != masks.shape:
                raise ValueError(f'input_mask_generator drew {tuple(hidden.shape)} masks, '
                                 f'mask_generator {tuple(masks.shape)}: give both the same grid')
            for sample, mask in zip(samples, hidden):
                sample.set_field(mask, 'input_mask')
        return data

    @staticmethod
    def _part_ids(samples: List) -> Optional[Tensor]:
        """``(B, H, W)`` int64 part ids of the samples, or None when none carries them."""
        has = ['part_ids' in sample for sample in samples]
        if not any(has):
            return None
        if not all(has):
            raise ValueError('only some data samples carry part_ids; every training image needs '
                             'its part map (LoadPartMap in the train pipeline).')
        return torch.stack([torch.as_tensor(sample.part_ids) for sample in samples]).long()
