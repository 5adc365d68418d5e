"""MAE with SemanticMIM's bottleneck (a combination no paper reports).

MAE's encoder already sees only the visible patches; the bottleneck goes into the decoder: its
mask tokens attend only to ``[cls tokens, mask tokens]``, never to the visible patches' latents,
so the encoder's cls token(s) must carry everything the decoder needs to reconstruct. The
decoder runs its stock blocks on ``[cls tokens, mask tokens of the predicted patches]``.
Encoder and decoder keep mmpretrain's ``MAEViT`` / ``MAEPretrainDecoder`` parameter names.
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmpretrain.models.necks.mae_neck import MAEPretrainDecoder
from mmpretrain.models.selfsup.mae import MAE, MAEViT
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..masking import mask_to_indices, random_mask
from .bottleneck import BottleneckMixin, gather_tokens


@MODELS.register_module()
class BottleneckMAEViT(BottleneckMixin, MAEViT):
    """``MAEViT`` on a given mask with ``num_cls_tokens`` cls tokens (the extra ones in
    ``extra_cls_tokens``, no position embedding). ``forward(x, mask)`` with a bool ``(B, L)``
    mask (True = hidden) returns the latents ``(B, N + V, C)``: ``N`` cls tokens, then the
    visible patches in ascending order; ``mask=None`` runs the plain ViT."""

    with_stack = False  # the decoder is the bottleneck

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        if mask is None:
            return super().forward(x, None)
        return self.forward_streams(x, None, mask)[0]


@MODELS.register_module()
class BottleneckMAEDecoder(MAEPretrainDecoder):
    """``MAEPretrainDecoder`` whose mask tokens see only the encoder's cls tokens.

    ``forward(cls, mask)``: ``cls`` ``(B, N, C_enc)`` encoder cls latents, ``mask`` bool
    ``(B, L)`` True = predicted. Returns ``(B, L, patch_size² · in_chans)`` predictions at the
    predicted patches, zeros elsewhere (the head's loss reads only the predicted ones). Every
    cls token gets the decoder's cls position embedding.
    """

    def forward(self, cls: Tensor, mask: Tensor) -> Tensor:
        num_cls = cls.shape[1]
        _, ids_pred = mask_to_indices(mask)
        pos = self.decoder_pos_embed
        cls = self.decoder_embed(cls) + pos[:, :1]
        mask_tokens = (self.mask_token + pos[:, 1:]).expand(len(mask), -1, -1)
        x = torch.cat([cls, gather_tokens(mask_tokens, ids_pred)], 1)
        for block in self.decoder_blocks:
            x = block(x)
        pred = self.decoder_pred(self.decoder_norm(x)[:, num_cls:])
        out = pred.new_zeros(*mask.shape, pred.shape[-1])
        out[mask] = pred.reshape(-1, pred.shape[-1])
        return out


@MODELS.register_module()
class BottleneckMAE(MAE):
    """MAE with a ``BottleneckMAEViT`` encoder and a ``BottleneckMAEDecoder`` neck.

    Masks come from ``data_sample.mask`` (predicted patches) and, with separate masks,
    ``data_sample.input_mask`` (patches hidden from the encoder), both written by
    ``MaskingDataPreprocessor``; without them, MAE's random mask at the backbone's
    ``mask_ratio`` serves as both.
    """

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """MAE's pixel loss on the predicted patches of ``inputs`` ``(B, 3, H, W)``."""
        mask, input_mask = self.masks(inputs, data_samples)
        latent = self.backbone(inputs, input_mask)
        pred = self.neck(latent[:, :self.backbone.num_cls_tokens], mask)
        return dict(loss=self.head.loss(pred, inputs, mask.float()))

    def masks(self, inputs: Tensor, data_samples: Optional[List[DataSample]]
              ) -> Tuple[Tensor, Tensor]:
        """``(mask, input_mask)``, bool ``(B, L)`` each."""
        samples = data_samples or []
        if not samples or not all('mask' in s for s in samples):
            if any('mask' in s for s in samples):
                raise ValueError('only some data samples carry a mask')
            mask = random_mask(len(inputs), self.backbone.num_patches,
                               self.backbone.mask_ratio, device=inputs.device)
            return mask, mask
        mask = torch.stack([s.mask.flatten() for s in samples]).bool()
        has = ['input_mask' in s for s in samples]
        if not any(has):
            return mask, mask
        if not all(has):
            raise ValueError('only some data samples carry an input_mask')
        return mask, torch.stack([s.input_mask.flatten() for s in samples]).bool()
