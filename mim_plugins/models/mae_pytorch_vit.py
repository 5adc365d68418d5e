"""MAE-pytorch's encoder (pengzhiliang/MAE-pytorch): a BEiT-layer ViT with no cls token and a
fixed 1-D sine-cosine position table.

It is mmpretrain's ``BEiTViT`` (q/v biases without a k bias, optional layer scale) built with
``with_cls_token=False``, ``use_abs_pos_emb=True`` and no relative position bias; only the
position table differs from what the stock backbone can do: MAE-pytorch numbers the patches
0..L-1 row by row and uses the 1-D table of "Attention is all you need"
(:func:`sinusoid_table_1d`), never trained. The weights load into a stock ``BEiTViT`` of the
same options; the fine-tuning config uses this class too, so that the table stays fixed there.
"""
from typing import Optional, Tuple, Union

from mmpretrain.models.backbones import BEiTViT
from mmpretrain.registry import MODELS
from torch import Tensor

from ..masking import mask_to_indices
from ..utils.pos_embed import sinusoid_table_1d
from .masked_encoding import gather_tokens


@MODELS.register_module()
class MAEPytorchViT(BEiTViT):
    """MAE-pytorch's pretraining encoder; ``BEiTViT``'s arguments with MAE-pytorch's defaults.

    ``forward(x, mask)``: images ``(B, 3, H, W)`` and ``mask`` bool ``(B, L)`` (True = hidden,
    the same count per row) give the visible rows ``(B, V, C)`` in ascending patch order after
    the final norm; ``mask=None`` is the stock ``BEiTViT`` forward on every patch.
    """

    def __init__(self, *args, with_cls_token: bool = False, use_abs_pos_emb: bool = True,
                 use_rel_pos_bias: bool = False, use_shared_rel_pos_bias: bool = False,
                 layer_scale_init_value: float = 0., out_type: str = 'raw',
                 final_norm: bool = True, **kwargs) -> None:
        if with_cls_token or not use_abs_pos_emb or use_rel_pos_bias or use_shared_rel_pos_bias:
            raise ValueError('MAEPytorchViT is the encoder without cls token with a fixed 1-D '
                             'table and no relative position bias. Fix: drop with_cls_token, '
                             'use_abs_pos_emb and the rel_pos_bias options from its config.')
        super().__init__(*args, with_cls_token=False, use_abs_pos_emb=True,
                         use_rel_pos_bias=False, use_shared_rel_pos_bias=False,
                         layer_scale_init_value=layer_scale_init_value, out_type=out_type,
                         final_norm=final_norm, **kwargs)
        self.pos_embed.requires_grad_(False)
        self.pos_embed.data.copy_(sinusoid_table_1d(*self.pos_embed.shape[1:]))

    def init_weights(self) -> None:
        """The stock initialisation, then the fixed table again (it draws a random one)."""
        super().init_weights()
        self.pos_embed.data.copy_(sinusoid_table_1d(*self.pos_embed.shape[1:]))

    def forward(self, x: Tensor, mask: Optional[Tensor] = None
                ) -> Union[Tensor, Tuple[Tensor, ...]]:
        if mask is None:
            return super().forward(x)
        tokens = self.patch_embed(x)[0] + self.pos_embed
        ids_keep, _ = mask_to_indices(mask)
        out = gather_tokens(tokens, ids_keep)
        for layer in self.layers:
            out = layer(out, rel_pos_bias=None)
        return self.ln1(out) if self.final_norm else out
