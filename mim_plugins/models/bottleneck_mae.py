"""MAE with SemanticMIM's bottleneck (a combination no paper reports).

MAE's encoder already sees only the visible patches; the bottleneck goes into the decoder: its
mask tokens attend only to ``[cls tokens, mask tokens]``, never to the visible patches' latents,
so the encoder's cls token(s) must carry everything the decoder needs to reconstruct. The
decoder runs its stock blocks on ``[cls tokens, mask tokens of the predicted patches]`` and
predicts only those patches. Encoder and decoder keep mmpretrain's ``MAEViT`` /
``MAEPretrainDecoder`` parameter names. ``BottleneckMAE`` is
:class:`~mim_plugins.models.masked_mae.MaskedMAE` with this encoder and decoder required.
"""
from typing import Optional, Union

import torch
from mmpretrain.models.necks.mae_neck import MAEPretrainDecoder
from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS
from torch import Tensor

from ..masking import random_mask
from .bottleneck import BottleneckMixin
from .mask_ratio import check_mask_ratio
from .masked_encoding import MaskedEncoding, check_patch_mask, gather_tokens, restore_ids
from .masked_mae import MaskedDecoder, MaskedMAE


@MODELS.register_module()
class BottleneckMAEViT(BottleneckMixin, MAEViT):
    """``MAEViT`` on a given mask with ``num_cls_tokens`` cls tokens.

    ``encode(x, mask, input_mask=None)`` with a bool ``(B, L)`` mask (True = hidden; with
    separate masks ``input_mask`` is the hidden one): ``main`` ``(B, N + V, C)`` (``N`` cls
    tokens, then the visible patches in ascending order), no predicted rows (the decoder
    predicts). ``mask=None`` draws MAE's random mask at ``mask_ratio``. ``forward(x, mask)``
    returns MAE's triple for stock callers (``mask=True`` a random mask), ``forward(x, None)``
    the plain ViT.
    """

    with_stack = False  # the decoder is the bottleneck

    def __init__(self, *args, mask_ratio: float = 0.75, **kwargs):
        mask_ratio = check_mask_ratio(mask_ratio, 'model.backbone.mask_ratio')
        super().__init__(*args, mask_ratio=mask_ratio, **kwargs)

    def encode(self, x: Tensor, mask: Optional[Tensor], input_mask: Optional[Tensor] = None,
               main: bool = True) -> MaskedEncoding:
        if mask is None:
            mask = random_mask(len(x), self.num_patches, self.mask_ratio, device=x.device)
        hidden = check_patch_mask(mask if input_mask is None else input_mask, len(x),
                                  self.num_patches)
        stream = self.streams(x, None, hidden)[0]
        return MaskedEncoding(stream, hidden, self.num_cls_tokens, ids_restore=restore_ids(hidden))

    def forward(self, x: Tensor, mask: Union[bool, Tensor, None] = True,
                input_mask: Optional[Tensor] = None):
        if mask is None or mask is False:
            return super().forward(x, None)
        encoding = self.encode(x, None if mask is True else mask, input_mask)
        return encoding.main, encoding.hidden.float(), encoding.ids_restore


@MODELS.register_module()
class BottleneckMAEDecoder(MaskedDecoder, MAEPretrainDecoder):
    """``MAEPretrainDecoder`` whose mask tokens see only the encoder's cls tokens.

    ``decode(encoding, ids)``: the encoding's ``num_cls`` cls latents and the predicted patches
    ``ids`` ``(B, M)``; returns ``(B, M, patch_size² · in_chans)``. ``forward(cls, ids)`` the
    same from cls latents ``(B, N, C_enc)``. Every cls token gets the decoder's cls position
    embedding.
    """

    def decode(self, encoding: MaskedEncoding, ids: Tensor) -> Tensor:
        return self(encoding.main[:, :encoding.num_cls], ids)

    def forward(self, cls: Tensor, ids: Tensor) -> Tensor:
        num_cls = cls.shape[1]
        pos = self.decoder_pos_embed
        cls = self.decoder_embed(cls) + pos[:, :1]
        mask_tokens = (self.mask_token + pos[:, 1:]).expand(len(ids), -1, -1)
        x = torch.cat([cls, gather_tokens(mask_tokens, ids)], 1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x)[:, num_cls:])


@MODELS.register_module()
class BottleneckMAE(MaskedMAE):
    """MAE with the bottleneck decoder: ``MaskedMAE`` with ``BottleneckMAEViT`` and
    ``BottleneckMAEDecoder``.

    Args: ``MaskedMAE``'s.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not (isinstance(self.backbone, BottleneckMAEViT)
                and isinstance(self.neck, BottleneckMAEDecoder)):
            raise ValueError(f'BottleneckMAE needs backbone BottleneckMAEViT and neck '
                             f'BottleneckMAEDecoder, got {type(self.backbone).__name__} and '
                             f'{type(self.neck).__name__}. Fix: set both, or type='
                             "'MaskedMAE'.")
