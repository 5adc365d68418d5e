"""MAE with SemanticMIM's bottleneck (a combination no paper reports).

MAE's encoder already sees only the visible patches; the bottleneck goes into the decoder: its
mask tokens attend only to ``[cls tokens, mask tokens]``, never to the visible patches' latents,
so the encoder's cls token(s) must carry everything the decoder needs to reconstruct. The
decoder runs its stock blocks on ``[cls tokens, mask tokens of the predicted patches]``.
Encoder and decoder keep mmpretrain's ``MAEViT`` / ``MAEPretrainDecoder`` parameter names. The
algorithm is :class:`~mim_plugins.models.masked_mae.MaskedMAE` (registered as
``BottleneckMAE`` too).
"""
from typing import Optional, Union

import torch
from mmpretrain.models.necks.mae_neck import MAEPretrainDecoder
from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS
from torch import Tensor

from ..masking import mask_to_indices, random_mask
from .bottleneck import BottleneckMixin, gather_tokens
from .mask_ratio import check_mask_ratio
from .semmae import check_patch_mask, restore_ids


@MODELS.register_module()
class BottleneckMAEViT(BottleneckMixin, MAEViT):
    """``MAEViT`` on a given mask with ``num_cls_tokens`` cls tokens (the extra ones in
    ``extra_cls_tokens``, no position embedding).

    ``forward(x, mask, input_mask=None)`` with a bool ``(B, L)`` mask (True = hidden; with
    separate masks ``input_mask`` is the hidden one) returns MAE's triple: the latents
    ``(B, N + V, C)`` (``N`` cls tokens, then the visible patches in ascending order), the
    hidden mask ``(B, L)`` float and ``ids_restore``. ``mask=True`` draws MAE's random mask at
    ``mask_ratio``; ``mask=None`` runs the plain ViT.
    """

    with_stack = False  # the decoder is the bottleneck

    def __init__(self, *args, mask_ratio: float = 0.75, **kwargs):
        mask_ratio = check_mask_ratio(mask_ratio, 'model.backbone.mask_ratio')
        super().__init__(*args, mask_ratio=mask_ratio, **kwargs)

    def forward(self, x: Tensor, mask: Union[bool, Tensor, None] = True,
                input_mask: Optional[Tensor] = None):
        if mask is None or mask is False:
            return super().forward(x, None)
        if mask is True:
            mask = random_mask(len(x), self.num_patches, self.mask_ratio, device=x.device)
        hidden = check_patch_mask(mask if input_mask is None else input_mask, len(x),
                                  self.num_patches)
        latent = self.forward_streams(x, None, hidden)[0]
        return latent, hidden.float(), restore_ids(hidden)


@MODELS.register_module()
class BottleneckMAEDecoder(MAEPretrainDecoder):
    """``MAEPretrainDecoder`` whose mask tokens see only the encoder's cls tokens.

    ``forward(cls, mask)``: ``cls`` ``(B, N, C_enc)`` encoder cls latents, ``mask`` bool
    ``(B, L)`` True = predicted. Returns ``(B, L, patch_size² · in_chans)`` predictions at the
    predicted patches, zeros elsewhere (the head's loss reads only the predicted ones). Every
    cls token gets the decoder's cls position embedding.
    """

    decodes_from_cls = True  # MaskedMAE hands it the cls latents and the predicted mask

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
