"""MAE's encoder on a given mask (SemMAE's semantic-guided one, or any other).

``SemMAEViT`` is mmpretrain's ``MAEViT`` whose ``forward(x, mask, input_mask=None)`` keeps the
visible tokens a given ``(B, L)`` bool mask says instead of drawing random ones. Parameter names
are ``MAEViT``'s, so the encoder loads into a stock ``VisionTransformer``
(``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``). The algorithm that
reads the masks from the data samples is :class:`~mim_plugins.models.masked_mae.MaskedMAE`
(registered as ``SemMAE`` too).
"""
from typing import Optional, Tuple, Union

import torch
from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS
from torch import Tensor

from ..masking import mask_to_indices
from .bottleneck import gather_tokens
from .mask_ratio import check_mask_ratio


def check_patch_mask(mask: Tensor, batch: int, num_patches: int, what: str = 'mask') -> Tensor:
    """``mask`` ``(B, L)`` or ``(B, h, w)`` bool as ``(B, L)``; a ``ValueError`` naming the
    shapes otherwise."""
    if mask.dtype != torch.bool or len(mask) != batch or mask[0].numel() != num_patches:
        raise ValueError(f'the {what} must be bool ({batch}, {num_patches}) (batch, patches), '
                         f'got {mask.dtype} {tuple(mask.shape)}')
    return mask.flatten(1)


def restore_ids(hidden: Tensor) -> Tensor:
    """MAE's ``ids_restore`` ``(B, L)`` for a bool mask ``(B, L)``: visible patches first, each
    group in ascending order."""
    ids_keep, ids_hidden = mask_to_indices(hidden)
    return torch.cat([ids_keep, ids_hidden], 1).argsort(1)


@MODELS.register_module()
class SemMAEViT(MAEViT):
    """``MAEViT`` whose forward takes the mask as an argument.

    ``forward(x, mask, input_mask=None)``: ``mask`` bool ``(B, L)`` (True = masked, the same
    count in every row) hides those patches; with separate masks ``input_mask`` is what the
    encoder hides and ``mask`` only what the decoder's loss predicts. ``mask=True`` draws
    ``MAEViT``'s random mask (the stock code path, bit for bit), ``None``/``False`` runs the
    plain ViT.
    """

    def __init__(self, *args, mask_ratio: float = 0.75, **kwargs):
        mask_ratio = check_mask_ratio(mask_ratio, 'model.backbone.mask_ratio')
        super().__init__(*args, mask_ratio=mask_ratio, **kwargs)

    def forward(self, x: Tensor, mask: Union[bool, Tensor, None] = True,
                input_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Returns ``(latent (B, 1 + V, C), hidden (B, L) float with 1 = hidden,
        ids_restore (B, L))`` as ``MAEViT`` does; the ``V`` visible patches in ascending
        order for a given mask."""
        if not isinstance(mask, Tensor):
            if input_mask is not None:
                raise ValueError('input_mask needs a given mask too (mask=True draws one)')
            return super().forward(x, mask)
        hidden = input_mask if input_mask is not None else mask
        hidden = check_patch_mask(hidden, len(x), self.num_patches,
                                  'input_mask' if input_mask is not None else 'mask')
        patches = self.patch_embed(x)[0] + self.pos_embed[:, 1:, :]
        ids_keep, _ = mask_to_indices(hidden)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(len(x), -1, -1)
        out = torch.cat([cls, gather_tokens(patches, ids_keep)], 1)
        for layer in self.layers:
            out = layer(out)
        return self.norm1(out), hidden.float(), restore_ids(hidden)
