"""The stock ``VisionTransformer`` with N cls tokens, to use a checkpoint pretrained with them.

SemanticMIM's bottleneck pretrains with ``num_cls_tokens = N`` (8 for MaskFeat): ``cls_token``
``(1, 1, C)``, ``extra_cls_tokens`` ``(1, N-1, C)`` and their position rows
``extra_cls_pos_embed`` ``(1, N-1, C)`` (the official code's ``cls_token (1, N, C)`` and first
``N`` position rows, split so the stock names keep the stock shapes); the extra ones sit right
after the cls token. The patch tokens learned to attend to all N, so
downstream (e.g. the VOC linear probe of patch features) may keep them. Everything else, and
every parameter name, is mmpretrain's ``VisionTransformer``; ``num_cls_tokens=1`` is exactly it.
"""
from typing import Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class MultiClsTokenViT(VisionTransformer):
    """``VisionTransformer`` whose sequence is ``[cls + pos_0, extra cls tokens + their position
    rows, patches + pos]``.

    Args:
        num_cls_tokens: cls tokens, >= 1 (the stock ViT has 1). Other arguments:
            ``VisionTransformer``'s (``with_cls_token`` must stay True).

    Outputs are the stock ones: ``featmap`` ``(B, C, h, w)`` holds the patch tokens only and
    ``cls_token`` ``(B, C)`` the first cls token; ``raw`` is ``(B, 1 + L, C)``, without the extra
    cls tokens.
    """

    def __init__(self, *args, num_cls_tokens: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if num_cls_tokens < 1 or self.cls_token is None:
            raise ValueError('MultiClsTokenViT needs with_cls_token=True and num_cls_tokens >= 1, '
                             f'got num_cls_tokens={num_cls_tokens}')
        self.num_cls_tokens = num_cls_tokens
        if num_cls_tokens > 1:
            self.extra_cls_tokens = nn.Parameter(
                torch.zeros(1, num_cls_tokens - 1, self.embed_dims),
                requires_grad=self.frozen_stages <= 0)  # frozen with the stem, as cls_token
            self.extra_cls_pos_embed = nn.Parameter(
                torch.zeros(1, num_cls_tokens - 1, self.embed_dims),
                requires_grad=self.frozen_stages <= 0)
            # The stock forward adds the position embedding, then runs drop_after_pos: the extra
            # tokens (with their own position rows) go in right there, so the rest of the
            # forward is mmpretrain's own.
            self.drop_after_pos.register_forward_pre_hook(self._insert_extra_cls_tokens)
            self._register_load_state_dict_pre_hook(self._zero_missing_cls_rows)

    def init_weights(self) -> None:
        super().init_weights()
        if self.num_cls_tokens > 1 and not (isinstance(self.init_cfg, dict)
                                            and self.init_cfg.get('type') == 'Pretrained'):
            trunc_normal_(self.extra_cls_tokens, std=0.02)
            trunc_normal_(self.extra_cls_pos_embed, std=0.02)

    def _zero_missing_cls_rows(self, state_dict: dict, prefix: str, *args) -> None:
        """A checkpoint with extra cls tokens but no position rows of theirs (MAE with the
        bottleneck: fixed sin-cos positions, nothing learned for the cls tokens) means rows of
        zeros."""
        if prefix + 'extra_cls_tokens' in state_dict and \
                prefix + 'extra_cls_pos_embed' not in state_dict:
            state_dict[prefix + 'extra_cls_pos_embed'] = torch.zeros_like(self.extra_cls_pos_embed)

    def _insert_extra_cls_tokens(self, module: nn.Module, inputs: Tuple[Tensor]) -> Tuple[Tensor]:
        """``(B, 1 + L, C)`` -> ``(B, N + L, C)``: the extra cls tokens after the first token."""
        x = inputs[0]
        extra = (self.extra_cls_tokens + self.extra_cls_pos_embed).expand(x.shape[0], -1, -1)
        return (torch.cat([x[:, :1], extra, x[:, 1:]], dim=1), )

    def _format_output(self, x: Tensor, hw: Tuple[int, int]) -> Tensor:
        if self.num_cls_tokens > 1:
            x = torch.cat([x[:, :1], x[:, self.num_cls_tokens:]], dim=1)
        return super()._format_output(x, hw)

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """The stock depths; the extra cls tokens and their position rows are in the stem, as
        ``cls_token`` and ``pos_embed``."""
        if param_name in (prefix + 'extra_cls_tokens', prefix + 'extra_cls_pos_embed'):
            return 0, self.num_layers + 2
        return super().get_layer_depth(param_name, prefix)
