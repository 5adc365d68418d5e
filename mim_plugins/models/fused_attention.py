"""mmpretrain's BEiT layer with fused attention: the same parameters and outputs, fewer passes.

``BEiTAttention`` materialises ``softmax(q·kᵀ + bias)`` as a tensor; :func:`beit_attention`
hands ``q, k, v`` and the relative position bias (as an additive ``attn_mask``) to
``torch.nn.functional.scaled_dot_product_attention``, which picks the fused kernel of the
device (flash / memory-efficient on a GPU, a fused CPU kernel otherwise). The math is the
stock one (float rounding aside); nothing is patched, callers run a layer through
:func:`beit_layer` instead of ``layer(x, rel_pos_bias)``.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .masked_encoding import gather_tokens
from .vit_rows import qkv_at_rows


def beit_attention(attn: nn.Module, x: Tensor, rel_pos_bias: Optional[Tensor] = None,
                   rows: Optional[Tensor] = None) -> Tensor:
    """``BEiTAttention.forward`` of ``attn`` on ``x`` ``(B, N, C)`` with fused attention;
    ``rel_pos_bias`` ``(heads, N, N)`` or ``(B, heads, N, N)`` (added to the logits).

    ``rows`` ``(B, M)``: only those rows' outputs ``(B, M, C)`` (queries at ``rows``, keys and
    values at every row), the rows of the full output; None: all ``N``.
    """
    batch, length, dims = x.shape
    weight, bias = attn.qkv.weight, attn.qkv.bias
    if attn.bias == 'qv_bias':
        bias = torch.cat((attn.q_bias, torch.zeros_like(attn.v_bias), attn.v_bias))
    if rows is None:
        qkv = F.linear(x, weight, bias)
        q, k, v = qkv.view(batch, length, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    else:  # the query projection of the kept rows only
        q, k, v = qkv_at_rows(x, weight, bias, attn.num_heads, rows)
    logit_bias = rel_pos_bias
    if attn.relative_position_bias_table is not None:  # a table of this layer's own
        h, w = attn.window_size
        own = attn.relative_position_bias_table[attn.relative_position_index.view(-1)]
        own = own.view(h * w + 1, h * w + 1, -1).permute(2, 0, 1)
        logit_bias = own if logit_bias is None else logit_bias + own
    if logit_bias is not None:
        logit_bias = logit_bias.to(q.dtype)
        if rows is not None:  # the kept rows' logits: (B, heads, M, N)
            logit_bias = logit_bias.expand(batch, *logit_bias.shape[-3:]).gather(
                2, rows[:, None, :, None].expand(-1, logit_bias.shape[-3], -1, length))
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=logit_bias, dropout_p=attn.attn_drop.p if attn.training else 0.0,
        scale=attn.scale)
    return attn.proj_drop(attn.proj(out.transpose(1, 2).reshape(batch, q.shape[2], dims)))


def beit_layer(layer: nn.Module, x: Tensor, rel_pos_bias: Optional[Tensor] = None,
               rows: Optional[Tensor] = None) -> Tensor:
    """``BEiTTransformerEncoderLayer.forward`` of ``layer`` with :func:`beit_attention`;
    ``rows`` ``(B, M)``: only those rows of the output, ``(B, M, C)`` (a last layer whose other
    rows nobody reads)."""
    attended = beit_attention(layer.attn, layer.ln1(x), rel_pos_bias, rows)
    if rows is not None:
        x = gather_tokens(x, rows)
    if layer.gamma_1 is None:
        x = x + layer.drop_path(attended)
        return x + layer.drop_path(layer.ffn(layer.ln2(x)))
    x = x + layer.drop_path(layer.gamma_1 * attended)
    return x + layer.drop_path(layer.gamma_2 * layer.ffn(layer.ln2(x)))
