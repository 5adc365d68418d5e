"""SemMAE stage 1 as the paper's Figure 1 (A) draws it: a learned part learner on a frozen ViT.

    frozen ViT -> class token (B, C), patch tokens (B, HW, C)
    PartTokenEmbed(class token) -> part tokens (B, N, C)
    PartAttention(part tokens, patch tokens) -> attention maps (B, N, h, w)   [+ L_d]
    AdaINDecoder(maps, style = class token) -> image                           [+ L_r]
    part segmentation = argmax over the N maps, per patch

Trained by the mmengine Runner like any model (configs/semmae/semmae-parts_*.py); only the
embedding and the decoder learn. ``segment`` gives the part maps that stage 2 reads.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS

from .part_losses import diversity_loss, reconstruction_loss


@MODELS.register_module()
class SemMAEPartLearner(BaseModel):
    """The learned part learner.

    Args:
        backbone: an mmpretrain ``VisionTransformer`` config with ``out_type='raw'`` (class token
            first); its weights come from ``init_cfg=dict(type='Pretrained', checkpoint=...,
            prefix='backbone.')``. It is frozen: no gradients, always in eval mode.
        num_parts: N (SemMAE: 7).
        embed / attention / decoder: configs of ``PartTokenEmbed``, ``PartAttention``,
            ``AdaINDecoder``; ``embed_dims``, ``num_parts`` and ``style_dims`` are filled in.
        reconstruction: ``'mse'`` or ``'l1'`` (``L_r``).
        reconstruction_weight / diversity_weight: the weights of ``L_r`` and ``L_d``.
    """

    def __init__(self, backbone: dict, num_parts: int = 7, embed: Optional[dict] = None,
                 attention: Optional[dict] = None, decoder: Optional[dict] = None,
                 reconstruction: str = 'mse', reconstruction_weight: float = 1.0,
                 diversity_weight: float = 1.0, data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if num_parts < 2:
            raise ValueError(f'num_parts must be at least 2, got {num_parts}')
        self.backbone = MODELS.build(backbone)
        if getattr(self.backbone, 'out_type', None) != 'raw' or not self.backbone.with_cls_token:
            raise ValueError("SemMAEPartLearner needs the ViT's class token and patch tokens: "
                             "set backbone.out_type='raw' and with_cls_token=True")
        self.backbone.requires_grad_(False)
        dims = self.backbone.embed_dims
        self.num_parts = num_parts
        self.embed = MODELS.build(dict(dict(type='PartTokenEmbed'), **(embed or {}),
                                       embed_dims=dims, num_parts=num_parts))
        self.attention = MODELS.build(dict(type='PartAttention', **(attention or {})))
        self.decoder = MODELS.build(dict(dict(type='AdaINDecoder'), **(decoder or {}),
                                         num_parts=num_parts, style_dims=dims))
        self.reconstruction = reconstruction
        self.reconstruction_weight = reconstruction_weight
        self.diversity_weight = diversity_weight

    def train(self, mode: bool = True) -> 'SemMAEPartLearner':
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout, and its norms never see training mode
        return self

    @property
    def grid(self) -> Tuple[int, int]:
        """(h, w) the ViT's patch grid."""
        return tuple(self.backbone.patch_embed.init_out_size)

    def tokens(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised images -> class token (B, C), patch tokens (B, HW, C) of the
        frozen ViT (last layer, after its final norm)."""
        with torch.no_grad():
            x = self.backbone(inputs)[-1]
        return x[:, 0], x[:, 1:]

    def attention_maps(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> attention maps (B, N, h, w) and the class token (B, C)."""
        cls_token, patch_tokens = self.tokens(inputs)
        maps = self.attention(self.embed(cls_token), patch_tokens, self.grid)
        return maps, cls_token

    @torch.no_grad()
    def segment(self, inputs: torch.Tensor,
                grid: Optional[Sequence[int]] = None) -> torch.Tensor:
        """(B, 3, H, W) -> (B, gh, gw) int64 part ids: the argmax over the N maps per cell. A
        ``grid`` other than the ViT's resizes the maps (bilinear) before the argmax."""
        maps, _ = self.attention_maps(inputs)
        if grid is not None and tuple(grid) != tuple(maps.shape[-2:]):
            maps = F.interpolate(maps, size=tuple(grid), mode='bilinear', align_corners=False)
        return maps.argmax(1)

    def loss(self, inputs: torch.Tensor, data_samples=None) -> Dict[str, torch.Tensor]:
        maps, cls_token = self.attention_maps(inputs)
        recon = self.decoder(maps, cls_token)
        return dict(
            loss_rec=self.reconstruction_weight
            * reconstruction_loss(recon, inputs, self.reconstruction),
            loss_div=self.diversity_weight * diversity_loss(maps))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], torch.Tensor]:
        """``'loss'``: the losses; ``'tensor'``: the attention maps (B, N, h, w);
        ``'predict'``: the part ids (B, h, w)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            return self.attention_maps(inputs)[0]
        if mode == 'predict':
            return self.segment(inputs)
        raise ValueError(f"mode must be 'loss', 'tensor' or 'predict', got {mode!r}")
