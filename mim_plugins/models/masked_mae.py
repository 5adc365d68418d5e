"""MAE on the masks of the data samples, with a pluggable decoder and an optional supervised
branch: the algorithm behind SemMAE, SupMAE and MAE with SemanticMIM's bottleneck.

``loss`` reads ``mask`` (predicted patches) and ``input_mask`` (hidden from the encoder;
defaults to ``mask``) with :func:`~mim_plugins.models.sample_masks.sample_masks`; without them
the encoder draws MAE's random mask. The encoder answers the masked-encoder contract
(``backbone.encode(x, mask, input_mask) -> MaskedEncoding``); the decoder answers
:class:`MaskedDecoder` (``decode(encoding, ids) -> (B, M, D)`` rows at the predicted patches):

* mmpretrain's ``MAEPretrainDecoder`` through :class:`StockMAEDecoder` (one cls token; it
  decodes every patch, the loss reads the predicted rows);
* ``BottleneckMAEDecoder`` (``N`` cls tokens), which decodes the predicted patches from the cls
  latents only.

The loss is the head's ``loss_module`` on the predicted rows (MAE's pixel loss: the same
value as ``MAEPretrainHead.loss`` on the full grid with the mask). ``cls_head`` /
``cls_loss_ratio`` attach SupMAE's branch (:mod:`~mim_plugins.models.supervised_branch`).
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.selfsup.mae import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..masking import mask_to_indices
from .masked_encoding import MaskedEncoder, MaskedEncoding, gather_tokens, scatter_rows
from .sample_masks import MaskConsumer, check_mask_fields, sample_masks
from .supervised_branch import SupervisedBranchMixin


class MaskedDecoder:
    """The MAE decoder contract: put before the stock decoder class in the bases."""

    def decode(self, encoding: MaskedEncoding, ids: Tensor) -> Tensor:
        """Predictions ``(B, K, D)`` at patches ``ids`` ``(B, K)`` (ascending), from the
        encoder's ``encoding``."""
        raise NotImplementedError

    def where(self, mask: Tensor) -> Tensor:
        """``(B, L)`` bool: the patches this decoder predicts when ``mask`` is predicted."""
        return mask


class StockMAEDecoder(MaskedDecoder):
    """Adapter for mmpretrain's ``MAEPretrainDecoder`` (``neck(latent, ids_restore)`` decodes
    every patch from ``[cls, visible latents]``). Not a module: it only calls the decoder."""

    def __init__(self, neck: nn.Module) -> None:
        self.neck = neck

    def decode(self, encoding: MaskedEncoding, ids: Tensor) -> Tensor:
        if encoding.num_cls != 1:
            raise ValueError(f"MAE's decoder reads one cls token, the encoder gives "
                             f"{encoding.num_cls}. Fix: neck=dict(type='BottleneckMAEDecoder') "
                             'or num_cls_tokens=1.')
        return gather_tokens(self.neck(encoding.main, encoding.ids_restore), ids)

    def where(self, mask: Tensor) -> Tensor:
        return torch.ones_like(mask)


def masked_decoder(neck: nn.Module) -> MaskedDecoder:
    """``neck`` itself when it declares the contract, else the stock adapter around it."""
    return neck if isinstance(neck, MaskedDecoder) else StockMAEDecoder(neck)


@MODELS.register_module()
class MaskedMAE(MaskConsumer, SupervisedBranchMixin, MAE):
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
        if not isinstance(self.backbone, MaskedEncoder):
            raise ValueError(
                f'{type(self).__name__} hands the masks to its encoder, but '
                f'{type(self.backbone).__name__} does not encode on given masks. Fix: '
                "backbone=dict(type='SemMAEViT') (MAEViT's parameters) or "
                "dict(type='BottleneckMAEViT').")
        check_mask_fields(self)

    @property
    def decoder(self) -> MaskedDecoder:
        return masked_decoder(self.neck)

    def consumed_fields(self) -> Tuple[str, ...]:
        """Both mask fields: the encoder hides ``input_mask`` (else ``mask``), the loss reads
        ``mask``."""
        return ('mask', 'input_mask')

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """MAE's pixel loss on the predicted patches of ``inputs`` ``(B, 3, H, W)``."""
        mask, input_mask = sample_masks(data_samples)
        encoding = self.backbone.encode(inputs, mask, input_mask)
        _, ids = mask_to_indices(encoding.hidden if mask is None else mask)
        pred = self.decoder.decode(encoding, ids)
        target = gather_tokens(self.head.construct_target(inputs), ids)
        losses = dict(loss=self.head.loss_module(pred, target, pred.new_ones(pred.shape[:2])))
        return self.add_branch(losses, encoding, data_samples)

    @torch.no_grad()
    def reconstruct(self, inputs: Tensor, mask: Tensor,
                    input_mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """What the model predicts for ``inputs`` ``(B, 3, H, W)`` (normalised) on a given
        ``mask`` ``(B, L)`` bool (and ``input_mask``, hidden from the encoder).

        Returns ``pixels`` ``(B, 3, H, W)``, the predictions in the input's space (``norm_pix``
        predictions restored with each original patch's mean and variance; zeros before that
        restoring where the decoder predicts nothing), and ``where`` ``(B, L)`` bool, the
        patches the model predicts (every patch with MAE's decoder, only the predicted ones
        with the bottleneck decoder).
        """
        encoding = self.backbone.encode(inputs, mask, input_mask)
        where = self.decoder.where(mask.flatten(1))
        _, ids = mask_to_indices(where)
        pred = scatter_rows(self.decoder.decode(encoding, ids), ids, where.shape[1])
        head = self.head
        if head.norm_pix:
            target = head.patchify(inputs)
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.e-6)**.5 + mean
        return dict(pixels=head.unpatchify(pred), where=where.clone())
