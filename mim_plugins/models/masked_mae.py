"""MAE on the masks of the data samples, with a pluggable decoder and an optional supervised
branch: one algorithm for SemMAE, MAE with SemanticMIM's bottleneck and SupMAE.

``loss`` reads ``mask`` (predicted patches) and ``input_mask`` (hidden from the encoder;
defaults to ``mask``) with :func:`~mim_plugins.models.sample_masks.sample_masks`; without them
the encoder draws MAE's random mask (``mask=True``). The encoder is called as
``backbone(x, mask, input_mask)`` and returns MAE's ``(latent, hidden, ids_restore)``:

* ``SemMAEViT`` (one cls token) with mmpretrain's ``MAEPretrainDecoder``: ``neck(latent,
  ids_restore)``, pixels of every patch;
* ``BottleneckMAEViT`` (``N`` cls tokens) with ``BottleneckMAEDecoder``, which declares
  ``decodes_from_cls = True``: ``neck(cls latents (B, N, C), predicted (B, L))``, pixels of the
  predicted patches from the cls tokens only.

The loss is the head's on the predicted patches. ``cls_head`` / ``cls_loss_ratio`` attach
SupMAE's branch (:mod:`~mim_plugins.models.supervised_branch`) on the latent's visible tokens.
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.mae import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from .sample_masks import check_mask_fields, sample_masks, takes_input_mask
from .supervised_branch import SupervisedBranchMixin


@MODELS.register_module(name=['MaskedMAE', 'SemMAE', 'BottleneckMAE'])
class MaskedMAE(SupervisedBranchMixin, MAE):
    """MAE whose encoder takes the masks as arguments.

    Args:
        cls_head: optional supervised branch head (e.g. ``VisibleTokenClsHead``); None = none.
        cls_loss_ratio: weight of the branch's loss.
        **kwargs: ``backbone`` (``SemMAEViT`` or ``BottleneckMAEViT``), ``neck``, ``head``, ...
            as in mmpretrain's ``MAE``.

    Returns ``loss`` (``loss_rec``, ``loss_cls`` and ``accuracy_top-k`` with a branch).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not takes_input_mask(self.backbone):
            raise ValueError(
                f'{type(self).__name__} hands the masks to its encoder, but '
                f'{type(self.backbone).__name__}.forward takes no input_mask. Fix: '
                "backbone=dict(type='SemMAEViT') (MAEViT's parameters) or "
                "dict(type='BottleneckMAEViT').")
        check_mask_fields(self)

    def consumed_fields(self) -> Tuple[str, ...]:
        """Both mask fields: the encoder hides ``input_mask`` (else ``mask``), the loss reads
        ``mask``."""
        return ('mask', 'input_mask')

    def encode(self, inputs: Tensor, data_samples: Optional[List[DataSample]]
               ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(latent (B, N + V, C), hidden (B, L) bool, predicted (B, L) bool,
        ids_restore (B, L))`` for images ``(B, 3, H, W)``."""
        mask, input_mask = sample_masks(data_samples)
        latent, hidden, ids_restore = self.backbone(inputs, True if mask is None else mask,
                                                    input_mask)
        hidden = hidden.bool()
        return latent, hidden, hidden if mask is None else mask, ids_restore

    def decode(self, latent: Tensor, hidden: Tensor, predicted: Tensor,
               ids_restore: Tensor) -> Tensor:
        """The neck's ``(B, L, p²·3)`` predictions (at least at the ``predicted`` patches)."""
        num_cls = latent.shape[1] - int((~hidden[0]).sum())
        if getattr(self.neck, 'decodes_from_cls', False):
            return self.neck(latent[:, :num_cls], predicted)
        if num_cls != 1:
            raise ValueError(f"MAE's decoder reads one cls token, the encoder gives {num_cls}. "
                             "Fix: neck=dict(type='BottleneckMAEDecoder') or num_cls_tokens=1.")
        return self.neck(latent, ids_restore)

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """MAE's pixel loss on the predicted patches of ``inputs`` ``(B, 3, H, W)``."""
        latent, hidden, predicted, ids_restore = self.encode(inputs, data_samples)
        pred = self.decode(latent, hidden, predicted, ids_restore)
        losses = dict(loss=self.head.loss(pred, inputs, predicted.float()))
        num_cls = latent.shape[1] - int((~hidden[0]).sum())
        return self.add_branch(losses, latent, data_samples, num_cls_tokens=num_cls)

    @torch.no_grad()
    def reconstruct(self, inputs: Tensor, mask: Tensor,
                    input_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """What the model predicts for ``inputs`` ``(B, 3, H, W)`` (normalised) on a given
        ``mask`` ``(B, L)`` bool (and ``input_mask``, hidden from the encoder).

        Returns ``pixels`` ``(B, 3, H, W)``, the predictions in the input's space (``norm_pix``
        predictions restored with each original patch's mean and variance), and ``where``
        ``(B, L)`` bool, the patches the model predicts (every patch with MAE's decoder, only
        the predicted ones with the bottleneck decoder).
        """
        latent, hidden, ids_restore = self.backbone(inputs, mask, input_mask)
        hidden = hidden.bool()
        pred = self.decode(latent, hidden, mask, ids_restore)
        head = self.head
        if getattr(head, 'norm_pix', False):
            target = head.patchify(inputs)
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.e-6)**.5 + mean
        where = (mask.clone() if getattr(self.neck, 'decodes_from_cls', False)
                 else torch.ones_like(mask))
        return dict(pixels=head.unpatchify(pred), where=where)
