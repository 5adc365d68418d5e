"""MaskFeat with SemanticMIM's semantic-compression bottleneck (Yang et al. 2024).

``BottleneckMaskFeatViT`` is mmpretrain's ``MaskFeatViT`` with the two streams of
:class:`~mim_plugins.models.bottleneck.BottleneckMixin`; ``BottleneckMaskFeat`` is MaskFeat's
algorithm on it (:class:`~mim_plugins.models.masked_maskfeat.MaskedMaskFeat` with that encoder
required): HOG of the predicted patches from the bottleneck rows only.
"""
from typing import Optional

from mmpretrain.models.selfsup.maskfeat import MaskFeatViT
from mmpretrain.registry import MODELS
from torch import Tensor

from .bottleneck import BottleneckMixin
from .masked_maskfeat import MaskedMaskFeat


@MODELS.register_module()
class BottleneckMaskFeatViT(BottleneckMixin, MaskFeatViT):
    """``MaskFeatViT`` with the bottleneck: ``encode(x, mask, input_mask)`` runs the two
    streams, ``forward(x)`` (no mask) the plain ViT.

    Args:
        num_cls_tokens: cls tokens that carry the image to the mask tokens (8 in SemanticMIM's
            MaskFeat recipe). Other arguments: ``MaskFeatViT``'s.
    """

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        if mask is not None:
            raise ValueError('BottleneckMaskFeatViT encodes masked images with encode(x, mask, '
                             "input_mask); the stock MaskFeat cannot use it. Fix: "
                             "type='BottleneckMaskFeat'.")
        return super().forward(x, None)


@MODELS.register_module()
class BottleneckMaskFeat(MaskedMaskFeat):
    """SemanticMIM's MaskFeat: ``MaskedMaskFeat`` on a ``BottleneckMaskFeatViT``.

    Args: ``MaskedMaskFeat``'s (``backbone=dict(type='BottleneckMaskFeatViT', ...)``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.backbone, BottleneckMaskFeatViT):
            raise ValueError(f'BottleneckMaskFeat needs backbone BottleneckMaskFeatViT, got '
                             f'{type(self.backbone).__name__}. Fix: backbone=dict(type='
                             "'BottleneckMaskFeatViT', ...), or type='MaskedMaskFeat'.")
