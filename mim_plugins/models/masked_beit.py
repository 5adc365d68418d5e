"""BEiT on the masks of the data samples, with any masked encoder and SupMAE's supervised branch.

The loss is mmpretrain's BEiT v1 one (tokenizer targets of the second view, CE on the predicted
patches, ``data_sample.mask``), computed on the encoder's compact predicted rows with the head's
own classifier and loss: the classifier runs only on those rows, and the tokenizer is asked for
the ids at those patches only (:mod:`~mim_plugins.models.dalle_tokenizer`). The encoder answers the
masked-encoder contract (:mod:`~mim_plugins.models.masked_encoding`): mmpretrain's
``BEiTPretrainViT`` through the stock adapter, ``BottleneckBEiTViT`` itself (then the data samples
may carry ``input_mask`` too). ``cls_head`` / ``cls_loss_ratio`` attach the branch on the
visible tokens of the main stream. A BEiT v2 neck keeps mmpretrain's stock layout, which its
neck and head need (the neck reads the backbone's shared relative position bias).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.beit import BEiT, BEiTPretrainViT
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .dalle_tokenizer import patch_tokenizer
from .fused_attention import beit_layer
from .masked_encoding import (MaskedEncoder, MaskedEncoding, mask_token_sequence,
                              masked_encoder, need_mask, single_sequence_encoding)
from .sample_masks import MaskConsumer, check_mask_fields, sample_masks
from .supervised_branch import SupervisedBranchMixin


@MODELS.register_module()
class MaskedBEiTViT(MaskedEncoder, BEiTPretrainViT):
    """``BEiTPretrainViT`` answering the masked-encoder contract with fused attention
    (:func:`~mim_plugins.models.fused_attention.beit_layer`): the same parameters (a checkpoint
    loads both ways) and the same outputs, float rounding aside. ``forward`` is the stock one
    (a BEiT v2 neck reads its layout).
    """

    separate_masks = False

    def encode(self, x: Tensor, mask: Tensor, input_mask: Optional[Tensor] = None,
               main: bool = True) -> MaskedEncoding:
        """BEiT's masked sequence ``[cls, a mask token at each predicted patch, the other
        patches]`` through the layers; ``predicted`` = the rows of the predicted patches.
        ``main=False``: the last layer runs on those rows alone (no one reads the others)."""
        if input_mask is not None:
            raise ValueError('MaskedBEiTViT hides exactly the predicted patches; separate masks '
                             "need backbone=dict(type='BottleneckBEiTViT').")
        mask = mask.flatten(1)
        patches, hw = self.patch_embed(x)
        seq = mask_token_sequence(patches, mask, self.mask_token, self.cls_token)
        if self.pos_embed is not None:
            seq = seq + resize_pos_embed(self.pos_embed, self.patch_resolution, hw,
                                         mode=self.interpolate_mode,
                                         num_extra_tokens=self.num_extra_tokens)
        seq = self.drop_after_pos(seq)
        bias = self.rel_pos_bias() if self.rel_pos_bias is not None else None
        *layers, last = self.layers
        for layer in layers:
            seq = beit_layer(layer, seq, bias)
        return single_sequence_encoding(
            seq, mask, lambda x, rows: beit_layer(last, x, bias, rows), self.final, main)

    def final(self, rows: Tensor) -> Tensor:
        """The final norm (when configured) of rows ``(B, K, C)``."""
        return self.norm1(rows) if self.final_norm else rows


@MODELS.register_module()
class MaskedBEiT(MaskConsumer, SupervisedBranchMixin, BEiT):
    """mmpretrain's ``BEiT`` with masks as arguments; see the module docstring.

    Args:
        cls_head, cls_loss_ratio: the optional supervised branch.
        **kwargs: ``BEiT``'s (``backbone``: ``MaskedBEiTViT`` (fused attention),
            ``BEiTPretrainViT`` (the stock one, through the adapter) or ``BottleneckBEiTViT``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.with_neck and self.encoder.separate_masks:
            raise ValueError('a BEiT v2 neck needs the full sequence, which the bottleneck '
                             'backbone does not run. Fix: drop the neck (BEiT v1) or use '
                             "backbone=dict(type='BEiTPretrainViT').")
        check_mask_fields(self)

    @property
    def encoder(self) -> MaskedEncoder:
        return masked_encoder(self.backbone)

    def consumed_fields(self) -> Tuple[str, ...]:
        """``mask``; ``input_mask`` too when the encoder takes separate masks."""
        return ('mask', 'input_mask') if self.encoder.separate_masks else ('mask', )

    def token_logits(self, rows: Tensor) -> Tensor:
        """The head's ``(B, K, vocab)`` logits for encoder rows ``(B, K, C)``."""
        return self.head.cls_head(rows)

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """BEiT's loss on ``inputs`` ``[view (B, 3, H, W), tokenizer view]`` (+ the branch)."""
        mask, input_mask = sample_masks(data_samples)
        mask = need_mask(mask, type(self).__name__)
        if self.with_neck:  # BEiT v2: mmpretrain's layout for its neck and head
            with torch.no_grad():
                target = self.target_generator(inputs[1]).detach()
            outputs = self.backbone(inputs[0], mask)
            feats, feats_cls_pt = self.neck(outputs,
                                            rel_pos_bias=self.backbone.shared_rel_pos_bias)
            loss = self.head.loss(feats, feats_cls_pt, target, mask)
            losses = dict(loss_1=loss[0], loss_2=loss[1])
            encoding = MaskedEncoding(outputs[-1], mask, 1, main_mask=mask)
        else:
            encoding = self.encoder.encode(inputs[0], mask, input_mask, main=self.with_branch)
            logits = self.token_logits(encoding.predicted)
            with torch.no_grad():
                tokens = patch_tokenizer(self.target_generator).tokens(
                    inputs[1], encoding.predicted_ids)
            losses = dict(loss=self.head.loss_module(logits.flatten(0, 1), tokens.flatten()))
        return self.add_branch(losses, encoding, data_samples)

    @torch.no_grad()
    def reconstruct(self, inputs: Tensor, mask: Tensor,
                    input_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``tokens`` ``(B, L)`` the head's argmax token id at each predicted patch (0
        elsewhere) and ``where`` ``(B, L)`` bool, the patches the loss predicts (BEiT v1)."""
        if self.with_neck:
            raise ValueError('reconstruct draws BEiT v1 token predictions; a BEiT v2 model '
                             '(with a neck) predicts tokenizer features, which it cannot show')
        mask = mask.flatten(1)
        encoding = self.encoder.encode(inputs, mask, input_mask)
        ids = self.token_logits(encoding.predicted).argmax(-1)
        tokens = torch.zeros_like(mask, dtype=torch.long).scatter(1, encoding.predicted_ids, ids)
        return dict(tokens=tokens, where=mask.clone())
