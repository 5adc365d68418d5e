"""MaskFeat on the masks of the data samples, with any masked encoder and SupMAE's supervised
branch.

The loss is mmpretrain's MaskFeat one (HOG of the input, L2 on the predicted patches,
``data_sample.mask``), computed on the encoder's compact predicted rows: the neck runs only on
them and the target is gathered at them. The encoder answers the masked-encoder contract
(:mod:`~mim_plugins.models.masked_encoding`): ``MaskedMaskFeatViT`` (mmpretrain's
``MaskFeatViT``, whose last layer runs on the predicted rows alone when nothing else is read),
the stock ``MaskFeatViT`` through the adapter, ``BottleneckMaskFeatViT`` itself (then the data
samples may carry ``input_mask`` too).
``cls_head`` / ``cls_loss_ratio`` attach the branch on the visible tokens of the main stream.
The HOG target is computed in float32 with autocast off (its ``scatter_add_`` needs one dtype on
both sides).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.maskfeat import MaskFeat, MaskFeatViT
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .masked_encoding import (MaskedEncoder, MaskedEncoding, gather_tokens, masked_encoder,
                              mask_token_sequence, need_mask, scatter_rows,
                              single_sequence_encoding)
from .sample_masks import MaskConsumer, check_mask_fields, sample_masks
from .supervised_branch import SupervisedBranchMixin
from .vit_rows import vit_layer_rows


@MODELS.register_module()
class MaskedMaskFeatViT(MaskedEncoder, MaskFeatViT):
    """``MaskFeatViT`` answering the masked-encoder contract: the same parameters (a
    checkpoint loads both ways) and outputs as its masked ``forward`` (float rounding aside).
    ``forward`` is the stock one.
    """

    separate_masks = False

    def encode(self, x: Tensor, mask: Tensor, input_mask: Optional[Tensor] = None,
               main: bool = True) -> MaskedEncoding:
        """MaskFeat's masked sequence ``[cls, a mask token at each predicted patch, the other
        patches]`` through the layers; ``predicted`` = the rows of the predicted patches.
        ``main=False``: the last layer runs on those rows alone (no one reads the others)."""
        if input_mask is not None:
            raise ValueError('MaskedMaskFeatViT hides exactly the predicted patches; separate '
                             "masks need backbone=dict(type='BottleneckMaskFeatViT').")
        mask = mask.flatten(1)
        seq = mask_token_sequence(self.patch_embed(x)[0], mask, self.mask_token, self.cls_token)
        seq = seq + self.pos_embed
        seq = self.drop_after_pos(seq)
        *layers, last = self.layers
        for layer in layers:
            seq = layer(seq)
        return single_sequence_encoding(
            seq, mask, lambda x, rows: last(x) if rows is None else vit_layer_rows(last, x, rows),
            self.final, main)

    def final(self, rows: Tensor) -> Tensor:
        """The final norm (when configured) of rows ``(B, K, C)``."""
        return self.norm1(rows) if self.final_norm else rows


@MODELS.register_module()
class MaskedMaskFeat(MaskConsumer, SupervisedBranchMixin, MaskFeat):
    """mmpretrain's ``MaskFeat`` with masks as arguments; see the module docstring.

    Args:
        cls_head, cls_loss_ratio: the optional supervised branch.
        **kwargs: ``MaskFeat``'s (``backbone``: ``MaskFeatViT`` or ``BottleneckMaskFeatViT``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_mask_fields(self)

    @property
    def encoder(self) -> MaskedEncoder:
        return masked_encoder(self.backbone)

    def consumed_fields(self) -> Tuple[str, ...]:
        """``mask``; ``input_mask`` too when the encoder takes separate masks."""
        return ('mask', 'input_mask') if self.encoder.separate_masks else ('mask', )

    def hog(self, inputs: Tensor) -> Tensor:
        """HOG targets ``(B, L, D)`` of ``inputs`` ``(B, 3, H, W)``, float32, autocast off."""
        with torch.autocast(inputs.device.type, enabled=False):
            return self.target_generator(inputs.float())

    def predict_hog(self, rows: Tensor) -> Tensor:
        """The neck's ``(B, K, D)`` HOG predictions for encoder rows ``(B, K, C)``."""
        batch, length, dims = rows.shape
        return self.neck((rows.reshape(batch * length, dims), ))[0].view(batch, length, -1)

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """MaskFeat's L2 loss on the HOG of the predicted patches (+ the branch's terms)."""
        mask, input_mask = sample_masks(data_samples)
        mask = need_mask(mask, type(self).__name__)
        encoding = self.encoder.encode(inputs, mask, input_mask, main=self.with_branch)
        pred = self.predict_hog(encoding.predicted)
        target = gather_tokens(self.hog(inputs), encoding.predicted_ids)
        losses = dict(loss=self.head.loss(pred, target, pred.new_ones(pred.shape[:2])))
        return self.add_branch(losses, encoding, data_samples)

    @torch.no_grad()
    def reconstruct(self, inputs: Tensor, mask: Tensor,
                    input_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``hog`` ``(B, L, D)`` predicted HOG, ``target`` ``(B, L, D)`` the input's HOG and
        ``where`` ``(B, L)`` bool, the patches whose prediction means something (every patch
        for a stock encoder, whose main stream has a row per patch; the predicted ones for the
        bottleneck, zeros elsewhere)."""
        mask = mask.flatten(1)
        encoding = self.encoder.encode(inputs, mask, input_mask)
        if encoding.main_mask is not None:
            hog = self.predict_hog(encoding.main[:, encoding.num_cls:])
            where = torch.ones_like(mask)
        else:
            hog = scatter_rows(self.predict_hog(encoding.predicted), encoding.predicted_ids,
                               mask.shape[1])
            where = mask.clone()
        return dict(hog=hog, target=self.hog(inputs), where=where)

