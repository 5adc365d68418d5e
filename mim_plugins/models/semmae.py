"""SemMAE (Li et al. 2022): MAE trained on semantic-part-guided masks.

SemMAE's encoder and decoder are MAE's; only the masks differ, and they come from the data
(``SemanticPartMaskGenerator`` in a ``MaskingDataPreprocessor``). So ``SemMAEViT`` is
mmpretrain's ``MAEViT`` that encodes on a given ``(B, L)`` bool mask (the masked-encoder contract,
:mod:`~mim_plugins.models.masked_encoding`), and ``SemMAE`` is the MAE algorithm that reads the
masks from the data samples (:class:`~mim_plugins.models.masked_mae.MaskedMAE`). Parameter names
are ``MAEViT``'s, so the encoder loads into a stock ``VisionTransformer``
(``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``).
"""
from typing import Optional, Tuple, Union

import torch
from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS
from torch import Tensor

from ..masking import mask_to_indices
from .mask_ratio import check_mask_ratio
from .masked_encoding import (MaskedEncoder, MaskedEncoding, check_patch_mask, gather_tokens,
                              restore_ids)
from .masked_mae import MaskedMAE


@MODELS.register_module()
class SemMAEViT(MaskedEncoder, MAEViT):
    """``MAEViT`` that encodes on a given mask.

    ``encode(x, mask, input_mask=None)``: ``mask`` bool ``(B, L)`` (True = masked, the same
    count in every row) hides those patches; with separate masks ``input_mask`` is what the
    encoder hides and ``mask`` only what the decoder's loss predicts. ``mask=None`` draws
    ``MAEViT``'s random mask (the stock code path, bit for bit). ``forward`` keeps ``MAEViT``'s
    call and triple for stock callers.
    """

    def __init__(self, *args, mask_ratio: float = 0.75, **kwargs):
        mask_ratio = check_mask_ratio(mask_ratio, 'model.backbone.mask_ratio')
        super().__init__(*args, mask_ratio=mask_ratio, **kwargs)

    def encode(self, x: Tensor, mask: Optional[Tensor], input_mask: Optional[Tensor] = None,
               main: bool = True) -> MaskedEncoding:
        """``main`` ``(B, 1 + V, C)``: the cls token then the ``V`` visible patches (ascending
        for a given mask, MAE's shuffled order for a drawn one, see ``ids_restore``)."""
        if mask is None:
            if input_mask is not None:
                raise ValueError('input_mask needs a given mask too (mask=None draws one)')
            latent, hidden, ids_restore = super().forward(x, True)
            return MaskedEncoding(latent, hidden.bool(), 1, ids_restore=ids_restore)
        hidden = input_mask if input_mask is not None else mask
        hidden = check_patch_mask(hidden, len(x), self.num_patches,
                                  'input_mask' if input_mask is not None else 'mask')
        patches = self.patch_embed(x)[0] + self.pos_embed[:, 1:, :]
        ids_keep, _ = mask_to_indices(hidden)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(len(x), -1, -1)
        out = torch.cat([cls, gather_tokens(patches, ids_keep)], 1)
        for layer in self.layers:
            out = layer(out)
        return MaskedEncoding(self.norm1(out), hidden, 1, ids_restore=restore_ids(hidden))

    def forward(self, x: Tensor, mask: Union[bool, Tensor, None] = True,
                input_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """``MAEViT``'s ``(latent, hidden (B, L) float, ids_restore)``; a given bool ``mask``
        as in :meth:`encode`, ``True`` MAE's random one, ``None``/``False`` the plain ViT."""
        if not isinstance(mask, Tensor):
            if input_mask is not None:
                raise ValueError('input_mask needs a given mask too (mask=True draws one)')
            return super().forward(x, mask)
        encoding = self.encode(x, mask, input_mask)
        return encoding.main, encoding.hidden.float(), encoding.ids_restore


@MODELS.register_module()
class SemMAE(MaskedMAE):
    """MAE on the masks of the data samples (SemMAE's part-guided ones in its configs).

    Args: ``MaskedMAE``'s; ``backbone=dict(type='SemMAEViT', ...)`` with mmpretrain's
    ``MAEPretrainDecoder`` and ``MAEPretrainHead``.
    """
