"""BEiT on the masks of the data samples, with or without SemanticMIM's bottleneck and
SupMAE's supervised branch.

The loss is mmpretrain's BEiT one (tokenizer targets of the second view, CE on the predicted
patches, ``data_sample.mask``); with a ``BottleneckBEiTViT`` the encoder also takes separate
masks (``data_sample.input_mask``). ``cls_head`` / ``cls_loss_ratio`` attach the branch on the
visible tokens of the main stream. A BEiT v2 neck keeps mmpretrain's stock path (it reads the
backbone's shared relative position bias).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.beit import BEiT
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .masked_encoder import encode_masked
from .masked_maskfeat import need_mask
from .sample_masks import check_mask_fields, sample_masks, takes_input_mask
from .supervised_branch import SupervisedBranchMixin


@MODELS.register_module(name=['MaskedBEiT', 'BottleneckBEiT'])
class MaskedBEiT(SupervisedBranchMixin, BEiT):
    """mmpretrain's ``BEiT`` with masks as arguments; see the module docstring.

    Args:
        cls_head, cls_loss_ratio: the optional supervised branch.
        **kwargs: ``BEiT``'s (``backbone``: ``BEiTPretrainViT`` or ``BottleneckBEiTViT``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.with_neck and takes_input_mask(self.backbone):
            raise ValueError('a BEiT v2 neck needs the full sequence, which the bottleneck '
                             'backbone does not run. Fix: drop the neck (BEiT v1) or use '
                             "backbone=dict(type='BEiTPretrainViT').")
        check_mask_fields(self)

    def consumed_fields(self) -> Tuple[str, ...]:
        """``mask``; ``input_mask`` too when the backbone takes separate masks."""
        return ('mask', 'input_mask') if takes_input_mask(self.backbone) else ('mask', )

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """BEiT's loss on ``inputs`` ``[view (B, 3, H, W), tokenizer view]`` (+ the branch)."""
        mask, input_mask = sample_masks(data_samples)
        mask = need_mask(mask, type(self).__name__)
        encoding = encode_masked(self.backbone, inputs[0], mask, input_mask)
        with torch.no_grad():
            target = self.target_generator(inputs[1]).detach()
        if self.with_neck:  # BEiT v2
            feats, feats_cls_pt = self.neck(encoding.outputs,
                                            rel_pos_bias=self.backbone.shared_rel_pos_bias)
            loss = self.head.loss(feats, feats_cls_pt, target, mask)
        else:
            loss = self.head.loss(encoding.latent, target, mask)
        losses = (dict(loss_1=loss[0], loss_2=loss[1]) if isinstance(loss, tuple)
                  else dict(loss=loss))
        return self.add_branch(losses, encoding.visible, data_samples,
                               encoding.num_cls_tokens, encoding.visible_mask)

    @torch.no_grad()
    def reconstruct(self, inputs: Tensor, mask: Tensor,
                    input_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``tokens`` ``(B, L)`` the head's argmax token id per patch and ``where`` ``(B, L)``
        bool, the patches the loss predicts (BEiT v1 head)."""
        if self.with_neck:
            raise ValueError('reconstruct draws BEiT v1 token predictions; a BEiT v2 model '
                             '(with a neck) predicts tokenizer features, which it cannot show')
        encoding = encode_masked(self.backbone, inputs, mask, input_mask)
        tokens = self.head.cls_head(encoding.latent[:, 1:]).argmax(-1)
        return dict(tokens=tokens, where=mask.clone())
