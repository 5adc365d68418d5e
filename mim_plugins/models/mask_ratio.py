"""The one check of a mask ratio, run where a config's ratio is built: our mask generators and
backbones at construction, and stock mmpretrain ``MAEViT`` backbones after the runner builds
them (``check_backbone_mask_ratio``, which the configs' ``MaskCheckHook`` runs next to
``check_mask_fields``)."""
import math
import numbers

from mmpretrain.models.selfsup.mae import MAEViT
from torch import nn

from ..utils.errors import UserInputError


def check_mask_ratio(value: object, where: str) -> float:
    """``value`` as a float when it is a number ``r`` with ``0 < r < 1``; otherwise a
    ``UserInputError`` naming the value, ``where`` (the config key) and the valid range.

    0 hides nothing (MAE's loss over no patch is NaN), 1 leaves the encoder no visible patch,
    and a string such as ``'0.75'`` would fail only when the first batch is masked."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (number and math.isfinite(value) and 0 < value < 1):
        got = f'{value!r} (a {type(value).__name__})' if not number else repr(value)
        raise UserInputError(f'{where} = {got}: a mask ratio must be a number r with 0 < r < 1 '
                             '(the fraction of patches masked). Fix: set it to e.g. 0.75 in the '
                             'config (or with --cfg-options).')
    return float(value)


def check_backbone_mask_ratio(model: nn.Module) -> None:
    """Check ``model.backbone.mask_ratio`` of a model whose backbone is an ``MAEViT`` (stock
    configs build it without our code); other models have no such ratio."""
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, MAEViT):
        check_mask_ratio(backbone.mask_ratio, 'model.backbone.mask_ratio')
