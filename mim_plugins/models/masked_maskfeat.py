"""MaskFeat on the masks of the data samples, with or without SemanticMIM's bottleneck and
SupMAE's supervised branch.

The loss is mmpretrain's MaskFeat one (HOG of the input, L2 on the predicted patches,
``data_sample.mask``); with a ``BottleneckMaskFeatViT`` the encoder also takes separate masks
(``data_sample.input_mask``). ``cls_head`` / ``cls_loss_ratio`` attach the branch on the visible
tokens of the main stream. The HOG target is computed in float32 with autocast off (its
``scatter_add_`` needs one dtype on both sides).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.maskfeat import MaskFeat
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .masked_encoder import MaskedEncoding, encode_masked
from .sample_masks import check_mask_fields, sample_masks, takes_input_mask
from .supervised_branch import SupervisedBranchMixin


def need_mask(mask: Optional[Tensor], algorithm: str) -> Tensor:
    """``mask`` or a ``ValueError`` saying where masks come from."""
    if mask is None:
        raise ValueError(f'{algorithm} predicts the patches of data_sample.mask, but the batch '
                         'carries none. Fix: data_preprocessor=dict(type='
                         "'MaskingDataPreprocessor', ...) or a mask generator in the pipeline.")
    return mask


@MODELS.register_module(name=['MaskedMaskFeat', 'BottleneckMaskFeat'])
class MaskedMaskFeat(SupervisedBranchMixin, MaskFeat):
    """mmpretrain's ``MaskFeat`` with masks as arguments; see the module docstring.

    Args:
        cls_head, cls_loss_ratio: the optional supervised branch.
        **kwargs: ``MaskFeat``'s (``backbone``: ``MaskFeatViT`` or ``BottleneckMaskFeatViT``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_mask_fields(self)

    def consumed_fields(self) -> Tuple[str, ...]:
        """``mask``; ``input_mask`` too when the backbone takes separate masks."""
        return ('mask', 'input_mask') if takes_input_mask(self.backbone) else ('mask', )

    def hog(self, inputs: Tensor) -> Tensor:
        """HOG targets ``(B, L, D)`` of ``inputs`` ``(B, 3, H, W)``, float32, autocast off."""
        with torch.autocast(inputs.device.type, enabled=False):
            return self.target_generator(inputs.float())

    def predict_hog(self, encoding: MaskedEncoding) -> Tensor:
        """The neck's ``(B, L, D)`` HOG predictions from the encoder rows (cls row dropped)."""
        batch, length, dims = encoding.latent.shape
        pred = self.neck((encoding.latent.reshape(batch * length, dims), ))[0]
        return pred.view(batch, length, -1)[:, 1:]

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """MaskFeat's L2 loss on the HOG of the predicted patches (+ the branch's terms)."""
        mask, input_mask = sample_masks(data_samples)
        mask = need_mask(mask, type(self).__name__)
        encoding = encode_masked(self.backbone, inputs, mask, input_mask)
        losses = dict(loss=self.head.loss(self.predict_hog(encoding), self.hog(inputs), mask))
        return self.add_branch(losses, encoding.visible, data_samples,
                               encoding.num_cls_tokens, encoding.visible_mask)

    @torch.no_grad()
    def reconstruct(self, inputs: Tensor, mask: Tensor,
                    input_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``hog`` ``(B, L, D)`` predicted HOG, ``target`` ``(B, L, D)`` the input's HOG and
        ``where`` ``(B, L)`` bool, the patches whose prediction means something (every patch
        for the stock encoder, the predicted ones for the bottleneck)."""
        encoding = encode_masked(self.backbone, inputs, mask, input_mask)
        stock = encoding.visible_mask is not None
        return dict(hog=self.predict_hog(encoding), target=self.hog(inputs),
                    where=torch.ones_like(mask) if stock else mask.clone())
