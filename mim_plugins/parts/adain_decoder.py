"""The StyleGAN-like decoder of SemMAE stage 1 (Figure 1, right): the N part attention maps,
through a conv, carry WHERE things are; the class token, injected by AdaIN at every stage,
carries WHAT they look like; the output reconstructs the image. Depth, width, the mapping
network and the upsampling are our choices (docs/semmae_stage1.md)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
          eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie, 2017; StyleGAN's style injection):
    (B, D, H, W) features normalised per sample and channel over space, then
    ``* (1 + scale) + bias`` with (B, D) style parameters."""
    mean = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps) * (1 + scale[..., None, None]) \
        + bias[..., None, None]


class AdaINBlock(nn.Module):
    """[upsample x2] -> conv 3x3 -> AdaIN(style) -> LeakyReLU: (B, D_in, H, W), (B, S) ->
    (B, D_out, H', W') with H' = 2H when ``upsample``."""

    def __init__(self, in_channels: int, out_channels: int, style_dims: int, upsample: bool):
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.style = nn.Linear(style_dims, 2 * out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
        scale, bias = self.style(style).chunk(2, dim=1)
        return F.leaky_relu(adain(self.conv(x), scale, bias), 0.2)


@MODELS.register_module()
class AdaINDecoder(BaseModule):
    """Part maps (B, N, h, w) and style (B, S) -> image (B, 3, h * 2^U, w * 2^U).

    A mapping MLP turns the style (the class token) into ``w`` (StyleGAN's mapping network);
    a first AdaIN block at the maps' resolution, then ``num_upsamples`` blocks that double it,
    then a 1x1 conv to RGB.

    Args:
        num_parts: N, input channels.
        style_dims: S, the class token's width.
        channels: width of every block.
        num_upsamples: U; the output is ``2^U`` times the patch grid (U = log2(patch size)
            reaches the input resolution; fewer compares with an area-averaged image).
        mapping_layers: depth of the mapping MLP (0: the class token is used as is).
    """

    def __init__(self, num_parts: int, style_dims: int, channels: int = 64,
                 num_upsamples: int = 2, mapping_layers: int = 2, out_channels: int = 3,
                 init_cfg=None):
        super().__init__(init_cfg)
        layers = []
        for _ in range(mapping_layers):
            layers += [nn.Linear(style_dims, style_dims), nn.LeakyReLU(0.2)]
        self.mapping = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(
            [AdaINBlock(num_parts, channels, style_dims, upsample=False)]
            + [AdaINBlock(channels, channels, style_dims, upsample=True)
               for _ in range(num_upsamples)])
        self.to_rgb = nn.Conv2d(channels, out_channels, 1)

    def forward(self, maps: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        w = self.mapping(style)
        x = maps
        for block in self.blocks:
            x = block(x, w)
        return self.to_rgb(x)
