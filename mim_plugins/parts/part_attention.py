"""SemMAE stage 1, the attention module of the paper's Figure 1 (b)-(e).

The class token of a frozen ViT is embedded into N part tokens ``(N, C)``; each part's attention
map is its token's product with the patch tokens, ``R^{NxC} x R^{CxHW} -> R^{NxHW}``, normalised
and blurred. The figure fixes the product; the embedding, the normalisation and the blur are our
choices (docs/semmae_stage1.md lists them) and are arguments here.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

NORMALISATIONS = ('parts', 'space')


def part_attention_logits(part_tokens: torch.Tensor, patch_tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, C) part tokens, (B, HW, C) patch tokens -> (B, N, HW) scaled dot products
    ``<part_n, patch_p> / sqrt(C)`` (the figure's product, scaled as attention is)."""
    return part_tokens @ patch_tokens.transpose(1, 2) / math.sqrt(part_tokens.shape[-1])


def normalise_maps(logits: torch.Tensor, normalisation: str = 'parts',
                   temperature: float = 1.0) -> torch.Tensor:
    """(B, N, HW) logits -> (B, N, HW) maps in [0, 1].

    ``'parts'``: softmax over the N parts at each patch (the maps sum to 1 per patch: a soft
    segmentation, the argmax of which is the part map). ``'space'``: softmax over the HW patches
    of each part (each map sums to 1: an attention distribution, as in a ViT's heads)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f'normalisation must be one of {NORMALISATIONS}, got {normalisation!r}')
    return (logits / temperature).softmax(dim=1 if normalisation == 'parts' else 2)


def gaussian_kernel(sigma: float, radius: Optional[int] = None) -> torch.Tensor:
    """(2r+1,) normalised 1-D Gaussian, r = ceil(2 sigma) by default."""
    radius = max(1, math.ceil(2 * sigma)) if radius is None else radius
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def blur_maps(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, N, h, w) maps -> same shape, each map convolved with a separable Gaussian of
    ``sigma`` patches (replicate padding, so borders keep their mass). ``sigma <= 0``: unchanged."""
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel(sigma).to(maps)
    r = kernel.numel() // 2
    b, n, h, w = maps.shape
    x = maps.reshape(b * n, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode='replicate'), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode='replicate'), kernel.view(1, 1, -1, 1))
    return x.reshape(b, n, h, w)


@MODELS.register_module()
class PartTokenEmbed(BaseModule):
    """Class token (B, C) -> N part tokens (B, N, C): the figure's "embed" (d).

    ``part_token = W_n cls + q_n``: one linear map of the class token per part (a single
    ``Linear(C, N*C)``) plus a learned per-part query ``q_n`` so that parts differ even where
    class tokens barely do; ``hidden`` > 0 puts an MLP (Linear-GELU) before it.

    Args:
        embed_dims: C, the ViT's width.
        num_parts: N.
        hidden: width of an optional hidden layer (0: a single linear map).
    """

    def __init__(self, embed_dims: int, num_parts: int, hidden: int = 0, init_cfg=None):
        super().__init__(init_cfg)
        self.embed_dims = embed_dims
        self.num_parts = num_parts
        self.mlp = (nn.Sequential(nn.Linear(embed_dims, hidden), nn.GELU())
                    if hidden > 0 else nn.Identity())
        self.proj = nn.Linear(hidden if hidden > 0 else embed_dims, num_parts * embed_dims)
        self.queries = nn.Parameter(torch.randn(num_parts, embed_dims) * embed_dims ** -0.5)

    def forward(self, cls_token: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(self.mlp(cls_token)).view(-1, self.num_parts, self.embed_dims)
        return tokens + self.queries


@MODELS.register_module()
class PartAttention(BaseModule):
    """Part tokens (B, N, C) x patch tokens (B, HW, C) -> attention maps (B, N, h, w): the
    figure's product (``part_attention_logits``), ``normalise_maps``, then ``blur_maps``.

    Args:
        normalisation: ``'parts'`` or ``'space'`` (see ``normalise_maps``).
        temperature: softmax temperature.
        blur_sigma: Gaussian blur in patches (0: none).
    """

    def __init__(self, normalisation: str = 'parts', temperature: float = 1.0,
                 blur_sigma: float = 0.5, init_cfg=None):
        super().__init__(init_cfg)
        if normalisation not in NORMALISATIONS:
            raise ValueError(f'normalisation must be one of {NORMALISATIONS}, got '
                             f'{normalisation!r}')
        if temperature <= 0:
            raise ValueError(f'temperature must be positive, got {temperature}')
        self.normalisation = normalisation
        self.temperature = temperature
        self.blur_sigma = blur_sigma

    def forward(self, part_tokens: torch.Tensor, patch_tokens: torch.Tensor,
                grid: tuple) -> torch.Tensor:
        logits = part_attention_logits(part_tokens, patch_tokens)
        maps = normalise_maps(logits, self.normalisation, self.temperature)
        return blur_maps(maps.unflatten(2, tuple(grid)), self.blur_sigma)
