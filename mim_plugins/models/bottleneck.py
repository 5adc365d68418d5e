"""SemanticMIM's semantic-compression bottleneck for BEiT and MaskFeat backbones.

Two streams replace the one masked sequence of BEiT / MaskFeat:

* **main**: ``[cls tokens, visible patches]`` through the backbone's own ``layers``, stock
  self-attention among themselves: the plain ViT run on the visible tokens.
* **bottleneck**: a mask token (``mask_token`` + position embedding) at every predicted patch,
  through ``bottleneck_layers``, a pretraining-only stack of the same layers (same class and
  settings, own weights).

At depth ``i`` main layer ``i`` runs first; then the stock bottleneck layer ``i`` runs on
``[cls tokens LEAVING main layer i, mask tokens]`` (the order of the official SemanticMIM code,
``maskfeat/maskfeat.py`` / ``beit/beit_model.py``). At the mask rows that *is* attention with
query = mask tokens and key/value = [cls tokens, mask tokens], so the mask tokens never see a
visible patch and learn about the image only through the cls tokens; the rows that layer
computes for the cls tokens are dropped (the cls stream is the main one). So every main layer,
the last included, feeds the loss. The backbone's own final norm (``ln1``) normalises both
streams, as the official code applies it to the whole sequence.

``encode(x, mask, input_mask)`` (the masked-encoder contract,
:mod:`~mim_plugins.models.masked_encoding`) returns the main stream and the compact predicted rows;
the loss is on those. The families are ``BottleneckMaskFeatViT`` (``bottleneck_maskfeat.py``),
``BottleneckBEiTViT`` (``bottleneck_beit.py``) and ``BottleneckMAEViT`` (``bottleneck_mae.py``).

The main layers keep mmpretrain's parameter names, so a checkpoint loads into the stock
``VisionTransformer`` / ``BEiTViT`` with only ``bottleneck_layers.*``, ``mask_token``,
``extra_cls_tokens`` and ``extra_cls_pos_embed`` left out (``MultiClsTokenViT`` keeps the last two).
``num_cls_tokens = N > 1`` adds ``extra_cls_tokens`` ``(1, N-1, C)`` right after the cls token
and, where the backbone learns an absolute position embedding, ``extra_cls_pos_embed`` ``(1, N-1,
C)``, a position row per extra token, as the official code has them (its ``cls_token (1, N, C)``
and the first ``N`` rows of its ``pos_embed``, split so the stock names keep the stock shapes).
The sum is one constant in the forward pass, but not in training: AdamW moves the token and its
row as two parameters (each by about the learning rate), weight decay acts on each, and gradient
clipping counts both, exactly as for the official parameters. A relative position bias
treats every cls token as the cls token.
"""
import copy
from typing import Optional, Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor, nn

from ..masking import mask_to_indices
from .masked_encoding import MaskedEncoder, MaskedEncoding, gather_tokens


def subset_rel_pos_bias(bias: Tensor, token_ids: Tensor) -> Tensor:
    """Per-image relative position bias among chosen tokens.

    Args:
        bias: ``(heads, 1 + L, 1 + L)``, the full-sequence bias (index 0 = the cls token).
        token_ids: ``(B, N)`` index into the full sequence of each token kept.

    Returns:
        ``(B, heads, N, N)`` with ``out[b, :, i, j] = bias[:, token_ids[b, i], token_ids[b, j]]``.
    """
    return bias[:, token_ids.unsqueeze(2), token_ids.unsqueeze(1)].transpose(0, 1)


class BottleneckMixin(MaskedEncoder):
    """The two streams for a ViT backbone with ``patch_embed``, ``cls_token``, ``pos_embed``
    (or None), ``mask_token``, ``layers``, ``final_norm`` / ``ln1`` and, BEiT only, a shared
    ``rel_pos_bias``: put it before the stock backbone class in the bases.

    Args:
        num_cls_tokens: cls tokens that carry the image to the mask tokens. Other arguments:
            the stock backbone's.

    ``with_stack = False`` (MAE, whose decoder is the bottleneck) keeps only the main stream.
    """

    with_stack = True

    def __init__(self, *args, num_cls_tokens: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        if num_cls_tokens < 1:
            raise ValueError(f'num_cls_tokens must be >= 1, got {num_cls_tokens}')
        if any(getattr(layer.attn, 'relative_position_bias_table', None) is not None
               for layer in self.layers):
            raise ValueError('the bottleneck needs the shared relative position bias '
                             '(use_shared_rel_pos_bias=True, use_rel_pos_bias=False), not one '
                             'per layer, which only fits the full sequence')
        self.num_cls_tokens = num_cls_tokens
        if num_cls_tokens > 1:
            self.extra_cls_tokens = nn.Parameter(torch.zeros(1, num_cls_tokens - 1,
                                                             self.embed_dims))
            # a learned position row per extra token where positions are learned (not MAE's
            # fixed sin-cos)
            self.with_cls_pos = self.pos_embed is not None and self.pos_embed.requires_grad
            if self.with_cls_pos:
                self.extra_cls_pos_embed = nn.Parameter(
                    torch.zeros(1, num_cls_tokens - 1, self.embed_dims))
        self.bottleneck_layers = None
        if self.with_stack:
            self.bottleneck_layers = copy.deepcopy(self.layers)
            for module in self.bottleneck_layers.modules():
                if module is not self.bottleneck_layers and hasattr(module, 'reset_parameters'):
                    module.reset_parameters()  # own weights, not a copy of the main ones

    def init_weights(self) -> None:
        super().init_weights()
        if isinstance(self.init_cfg, dict) and self.init_cfg['type'] == 'Pretrained':
            return
        if self.num_cls_tokens > 1:
            trunc_normal_(self.extra_cls_tokens, std=0.02)
            if self.with_cls_pos:
                trunc_normal_(self.extra_cls_pos_embed, std=0.02)

    def run_layer(self, layer: nn.Module, x: Tensor, bias: Optional[Tensor]) -> Tensor:
        """One stock layer on ``x`` ``(B, N, C)``; ``bias`` ``(B, heads, N, N)`` or None (a
        backbone family whose layers take a bias overrides this)."""
        return layer(x)

    def embed(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Images ``(B, 3, H, W)`` → ``(cls tokens (B, N, C), patches (B, L, C),
        mask tokens (B, L, C) or None without a stack)``, position embedding added where the
        backbone has one."""
        patches, hw = self.patch_embed(x)
        batch, length, _ = patches.shape
        cls = self.cls_token.expand(batch, -1, -1)
        masks = None
        if self.bottleneck_layers is not None:
            masks = self.mask_token.expand(batch, length, -1)
        if self.pos_embed is not None:
            pos = resize_pos_embed(self.pos_embed, self.patch_resolution, hw,
                                   mode=self.interpolate_mode,
                                   num_extra_tokens=self.num_extra_tokens)
            cls, patches = cls + pos[:, :1], patches + pos[:, 1:]
            masks = None if masks is None else masks + pos[:, 1:]
        if self.num_cls_tokens > 1:
            extra = self.extra_cls_tokens
            if self.with_cls_pos:
                extra = extra + self.extra_cls_pos_embed
            cls = torch.cat([cls, extra.expand(batch, -1, -1)], 1)
        return cls, patches, masks

    def forward_streams(self, x: Tensor, mask: Optional[Tensor],
                        input_mask: Optional[Tensor] = None
                        ) -> Tuple[Tensor, Optional[Tensor]]:
        """``(main, pred)`` of :meth:`streams`."""
        return self.streams(x, mask, input_mask)[:2]

    def encode(self, x: Tensor, mask: Tensor, input_mask: Optional[Tensor] = None,
               main: bool = True) -> MaskedEncoding:
        """The contract: ``main`` = the main stream, ``predicted`` = the bottleneck rows."""
        hidden = (mask if input_mask is None else input_mask).flatten(1)
        stream, pred, ids_pred = self.streams(x, mask, input_mask)
        return MaskedEncoding(stream, hidden, self.num_cls_tokens, predicted=pred,
                              predicted_ids=ids_pred)

    def streams(self, x: Tensor, mask: Optional[Tensor], input_mask: Optional[Tensor] = None
                ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Run both streams (only the main one without a stack).

        Args:
            x: images ``(B, 3, H, W)``.
            mask: bool ``(B, L)`` (or ``(B, h, w)``), True = predicted (a bottleneck token);
                unused without a stack.
            input_mask: bool, same shape, True = hidden from the main stream; defaults to
                ``mask`` (separate masks: drawn independently). Each mask must hold the same
                count in every image.

        Returns:
            ``main`` ``(B, N + V, C)``: ``N`` cls tokens then the ``V`` visible patches in
            ascending patch order; ``pred`` ``(B, M, C)``: the ``M`` predicted patches in
            ascending patch order (None without a stack). Both after the final norm. And
            ``ids_pred`` ``(B, M)`` the predicted patches (None without a stack).
        """
        input_mask = (mask if input_mask is None else input_mask).flatten(1).bool()
        ids_visible, _ = mask_to_indices(input_mask)
        cls, patches, mask_tokens = self.embed(x)
        main = self.drop_after_pos(torch.cat([cls, gather_tokens(patches, ids_visible)], 1))
        pre_norm = getattr(self, 'pre_norm', None) or nn.Identity()
        main = pre_norm(main)
        stack = self.bottleneck_layers or [None] * len(self.layers)
        pred = ids_pred = None
        if self.bottleneck_layers is not None:
            _, ids_pred = mask_to_indices(mask.flatten(1).bool())
            # no position dropout on the mask tokens: the official code drops only [cls, patches]
            pred = pre_norm(gather_tokens(mask_tokens, ids_pred))

        n = self.num_cls_tokens
        bias_main = bias_pred = None
        if getattr(self, 'rel_pos_bias', None) is not None:
            full = self.rel_pos_bias()
            cls_ids = ids_visible.new_zeros(len(ids_visible), n)
            bias_main = subset_rel_pos_bias(full, torch.cat([cls_ids, ids_visible + 1], 1))
            if ids_pred is not None:
                bias_pred = subset_rel_pos_bias(full, torch.cat([cls_ids, ids_pred + 1], 1))
        for layer, twin in zip(self.layers, stack):
            main = self.run_layer(layer, main, bias_main)
            if twin is not None:  # reads the cls tokens main layer i has just written
                pred = self.run_layer(twin, torch.cat([main[:, :n], pred], 1), bias_pred)[:, n:]
        norm = self.ln1 if self.final_norm else nn.Identity()
        return norm(main), None if pred is None else norm(pred), ids_pred
