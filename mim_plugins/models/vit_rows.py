"""mmpretrain's ViT layer computed at some rows only: for a last layer whose other rows nobody
reads (MaskFeat's loss reads the predicted patches alone).

Queries, the projection and the FFN run at the kept rows; keys and values at every row, as the
full layer computes them. Same parameters, same outputs at those rows (float rounding aside);
nothing is patched, the caller runs the layer through :func:`vit_layer_rows`.
"""
from typing import Optional, Tuple

from torch import Tensor, nn
from torch.nn import functional as F

from .masked_encoding import gather_tokens


def qkv_at_rows(x: Tensor, weight: Tensor, bias: Optional[Tensor], num_heads: int,
                rows: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """A fused ``qkv`` projection (``weight`` ``(3C, C)``, ``bias`` ``(3C,)`` or None) of ``x``
    ``(B, N, C)`` with the queries at ``rows`` ``(B, M)`` only: ``q`` ``(B, heads, M, C/heads)``,
    ``k``, ``v`` ``(B, heads, N, C/heads)``."""
    batch, length, dims = x.shape
    q = F.linear(gather_tokens(x, rows), weight[:dims], None if bias is None else bias[:dims])
    kv = F.linear(x, weight[dims:], None if bias is None else bias[dims:])
    q = q.view(batch, rows.shape[1], num_heads, -1).transpose(1, 2)
    k, v = kv.view(batch, length, 2, num_heads, -1).permute(2, 0, 3, 1, 4)
    return q, k, v


def vit_layer_rows(layer: nn.Module, x: Tensor, rows: Tensor) -> Tensor:
    """``TransformerEncoderLayer.forward`` of ``layer`` on ``x`` ``(B, N, C)``, only at ``rows``
    ``(B, M)``: the ``(B, M, C)`` rows of the full output."""
    attn = layer.attn
    if attn.v_shortcut or attn.input_dims != attn.embed_dims:
        raise ValueError('vit_layer_rows needs a plain self-attention layer (no v_shortcut, '
                         'input width = embed width)')
    batch, _, dims = x.shape
    q, k, v = qkv_at_rows(layer.ln1(x), attn.qkv.weight, attn.qkv.bias, attn.num_heads, rows)
    out = attn.scaled_dot_product_attention(q, k, v,
                                            dropout_p=attn.attn_drop if attn.training else 0.)
    out = attn.proj(out.transpose(1, 2).reshape(batch, rows.shape[1], dims))
    x = gather_tokens(x, rows) + attn.out_drop(attn.gamma1(attn.proj_drop(out)))
    return layer.ffn(layer.ln2(x), identity=x)
