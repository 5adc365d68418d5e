"""The one place algorithms read masks from data samples, and the check that none is ignored.

``MaskingDataPreprocessor`` writes ``data_sample.mask`` (the predicted patches) and, with an
``input_mask_generator``, ``data_sample.input_mask`` (the patches hidden from the encoder). An
algorithm reads both with :func:`sample_masks` and hands them to its encoder as arguments,
``backbone(x, mask, input_mask)``. Every algorithm says which of the two fields it reads
(``consumed_fields``, declared by :class:`MaskConsumer`); :func:`check_mask_fields` refuses a
model whose preprocessor writes a field its algorithm would silently ignore. A model that does
not declare the fields reads none of them: mmpretrain's own algorithms either draw their own
masks (MAE) or read the pipeline's ``mask``, never the preprocessor's.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmpretrain.structures import DataSample
from torch import Tensor, nn

MASK_FIELDS = ('mask', 'input_mask')


class MaskConsumer:
    """Declares the mask fields an algorithm reads from its data samples (put it in the
    algorithm's bases and implement ``consumed_fields``)."""

    def consumed_fields(self) -> Tuple[str, ...]:
        raise NotImplementedError


def field_from_samples(data_samples: Optional[Sequence[DataSample]],
                       field: str = 'mask') -> Optional[Tensor]:
    """``(B, L)`` bool from each sample's ``field`` (``(H, W)`` or ``(L,)``), or None when no
    sample carries it. A batch carries a field in every sample or in none."""
    samples = list(data_samples or [])
    has = [sample is not None and field in sample for sample in samples]
    if not any(has):
        return None
    if not all(has):
        raise ValueError(f'only {sum(has)} of {len(has)} data samples carry `{field}`; a batch '
                         'is masked either all by MaskingDataPreprocessor or all by the model')
    return torch.stack([torch.as_tensor(s.get(field)).flatten() for s in samples]).bool()


def sample_masks(data_samples: Optional[Sequence[DataSample]]
                 ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(mask, input_mask)`` of the batch, bool ``(B, L)`` each or None; an ``input_mask``
    without a ``mask`` is refused (the predicted patches would be undefined)."""
    mask = field_from_samples(data_samples, 'mask')
    input_mask = field_from_samples(data_samples, 'input_mask')
    if input_mask is not None and mask is None:
        raise ValueError('the data samples carry `input_mask` but no `mask`: separate masks '
                         'need both (MaskingDataPreprocessor writes them together)')
    return mask, input_mask


def consumed_fields(model: nn.Module) -> Tuple[str, ...]:
    """The mask fields ``model`` reads from the preprocessor's data samples: what it declares,
    none when it declares nothing."""
    return tuple(model.consumed_fields()) if isinstance(model, MaskConsumer) else ()


def check_mask_fields(model: nn.Module) -> None:
    """Refuse a model whose data preprocessor writes a mask field the algorithm ignores.

    Raises ``ValueError`` naming the field, the algorithm and the fix; does nothing for a
    preprocessor that writes no masks.
    """
    pre = getattr(model, 'data_preprocessor', None)
    written: List[str] = list(getattr(pre, 'written_fields', lambda: ())())
    consumed = consumed_fields(model)
    if not written:
        return
    ignored = [field for field in written if field not in consumed]
    if not ignored:
        return
    name = type(model).__name__
    field = ignored[0]
    if field == 'mask':
        fix = ("mask with the model's own random masking (drop MaskingDataPreprocessor), or use "
               "an algorithm that reads given masks (MAE family: type='SemMAE' with "
               "backbone=dict(type='SemMAEViT'); BEiT: type='MaskedBEiT'; MaskFeat: "
               "type='MaskedMaskFeat')")
    else:
        fix = ('drop input_mask_generator, or use a backbone that takes separate masks '
               '(BottleneckBEiTViT, BottleneckMaskFeatViT, SemMAEViT, BottleneckMAEViT)')
    raise ValueError(f'MaskingDataPreprocessor writes data_sample.{field}, but {name} '
                     f'(backbone {type(getattr(model, "backbone", None)).__name__}) never reads '
                     f'it, so the config would train on other masks than it says. Fix: {fix}.')
