"""mmpretrain's ViT layer computed at some rows only: for a last layer whose other rows nobody
reads (MaskFeat's loss reads the predicted patches alone).

Queries, the projection and the FFN run at the kept rows; keys and values at every row, as the
full layer computes them. Same parameters, same outputs at those rows (float rounding aside);
nothing is patched, the caller runs the layer through :func:`vit_layer_rows`.
"""
from torch import Tensor, nn
from torch.nn import functional as F

from .masked_encoding import gather_tokens


def vit_layer_rows(layer: nn.Module, x: Tensor, rows: Tensor) -> Tensor:
    """``TransformerEncoderLayer.forward`` of ``layer`` on ``x`` ``(B, N, C)``, only at ``rows``
    ``(B, M)``: the ``(B, M, C)`` rows of the full output."""
    attn = layer.attn
    if attn.v_shortcut or attn.input_dims != attn.embed_dims:
        raise ValueError('vit_layer_rows needs a plain self-attention layer (no v_shortcut, '
                         'input width = embed width)')
    batch, length, dims = x.shape
    normed = layer.ln1(x)
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = F.linear(gather_tokens(normed, rows), weight[:dims], None if bias is None else bias[:dims])
    kv = F.linear(normed, weight[dims:], None if bias is None else bias[dims:])
    q = q.view(batch, rows.shape[1], attn.num_heads, attn.head_dims).transpose(1, 2)
    k, v = kv.view(batch, length, 2, attn.num_heads, attn.head_dims).permute(2, 0, 3, 1, 4)
    out = attn.scaled_dot_product_attention(q, k, v,
                                            dropout_p=attn.attn_drop if attn.training else 0.)
    out = attn.proj(out.transpose(1, 2).reshape(batch, rows.shape[1], dims))
    x = gather_tokens(x, rows) + attn.out_drop(attn.gamma1(attn.proj_drop(out)))
    return layer.ffn(layer.ln2(x), identity=x)
