"""MAE as pengzhiliang/MAE-pytorch trains it: its decoder, target, loss and mask count.

What differs from the official MAE (mmpretrain's ``MAE``), each piece here:

* ``MAEPytorchDecoder``: ``encoder_to_decoder`` without bias, no cls token, BEiT layers (q/v
  biases, optional layer scale) and a fixed 1-D table; the mask tokens come AFTER the visible
  tokens, each token with the table row of its own patch, and only the mask-token rows are
  predicted (ascending patch index).
* ``MAEPytorchHead``: the target is normalised per patch AND per colour channel, with the
  unbiased std and eps on the std, ``(x - mean) / (std + 1e-6)``, of the pixels in [0, 1]
  (the preprocessor's normalisation undone); MSE over the predicted values.
* ``MAEPytorch``: exactly ``int(mask_ratio * L)`` masked patches per image (its
  ``RandomMaskingGenerator``; MAE keeps ``int(L * (1 - r))``), or the masks of the data samples.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.models.backbones.beit import BEiTTransformerEncoderLayer
from mmpretrain.models.selfsup.mae import MAE
from mmpretrain.models.utils import build_norm_layer
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from ..masking import mask_to_indices
from ..utils.pos_embed import sinusoid_table_1d
from .masked_encoding import gather_tokens
from .sample_masks import MaskConsumer, check_mask_fields, sample_masks


def count_mask(batch: int, num_patches: int, mask_ratio: float,
               generator: Optional[torch.Generator] = None,
               device: Optional[torch.device] = None) -> Tensor:
    """MAE-pytorch's ``RandomMaskingGenerator``: bool ``(batch, num_patches)``, exactly
    ``int(mask_ratio * num_patches)`` True (masked) per row, uniformly at random."""
    num_mask = int(mask_ratio * num_patches)
    if not 0 < num_mask < num_patches:
        raise ValueError(f'mask_ratio={mask_ratio} masks {num_mask} of {num_patches} patches; '
                         'MAE-pytorch needs at least one masked and one visible. Fix: a ratio '
                         'in (0, 1) that leaves both.')
    noise = torch.rand(batch, num_patches, generator=generator, device=device)
    ids = noise.argsort(dim=1)[:, :num_mask]
    return torch.zeros_like(noise, dtype=torch.bool).scatter_(1, ids, True)


def visible_then_masked(tokens: Tensor, mask_token: Tensor, table: Tensor,
                        mask: Tensor) -> Tensor:
    """MAE-pytorch's decoder input ``(B, L, C)``: the visible ``tokens`` ``(B, V, C)`` plus the
    ``table`` ``(1, L, C)`` rows of their patches, then one ``mask_token`` ``(1, 1, C)`` per
    masked patch plus its row; both groups in ascending patch order (``mask`` ``(B, L)``)."""
    ids_keep, ids_masked = mask_to_indices(mask)
    table = table.expand(len(tokens), -1, -1)
    return torch.cat([tokens + gather_tokens(table, ids_keep),
                      mask_token + gather_tokens(table, ids_masked)], 1)


@MODELS.register_module()
class MAEPytorchDecoder(BaseModule):
    """MAE-pytorch's decoder (``encoder_to_decoder``, ``mask_token``, ``decoder.*``).

    Args:
        num_patches: L. patch_size, in_chans: the pixels each row predicts (``p*p*in_chans``).
        embed_dim: the encoder's width. decoder_embed_dim, decoder_depth, decoder_num_heads,
            mlp_ratio: the decoder's (ViT-B: 384, 4, 6, 4).
        layer_scale_init_value: MAE-pytorch's ``init_values`` (0 = no layer scale).
        norm_cfg: LayerNorm eps 1e-6 as in its models.
    """

    def __init__(self, num_patches: int = 196, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, decoder_embed_dim: int = 384, decoder_depth: int = 4,
                 decoder_num_heads: int = 6, mlp_ratio: float = 4.,
                 layer_scale_init_value: float = 0., norm_cfg: dict = dict(type='LN', eps=1e-6),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        side = int(num_patches ** .5)
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(sinusoid_table_1d(num_patches, decoder_embed_dim),
                                              requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            BEiTTransformerEncoderLayer(
                embed_dims=decoder_embed_dim, num_heads=decoder_num_heads,
                feedforward_channels=int(decoder_embed_dim * mlp_ratio),
                layer_scale_init_value=layer_scale_init_value, window_size=(side, side),
                use_rel_pos_bias=False, norm_cfg=norm_cfg) for _ in range(decoder_depth)])
        self.ln1 = build_norm_layer(norm_cfg, decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans)

    def init_weights(self) -> None:
        """``init_cfg``'s, then MAE-pytorch's: the mask token ``trunc_normal(std=.02)``, and
        PyTorch's default for ``decoder_embed`` (its ``_init_weights`` never reaches
        ``encoder_to_decoder``); the table kept fixed."""
        super().init_weights()
        self.decoder_embed.reset_parameters()
        nn.init.trunc_normal_(self.mask_token, std=.02, a=-.02, b=.02)
        self.decoder_pos_embed.data.copy_(sinusoid_table_1d(*self.decoder_pos_embed.shape[1:]))

    def forward(self, latent: Tensor, mask: Tensor) -> Tensor:
        """Pixels ``(B, M, p*p*3)`` of the masked patches (ascending) from the encoder's
        visible rows ``latent`` ``(B, V, C)`` and ``mask`` ``(B, L)`` bool."""
        x = visible_then_masked(self.decoder_embed(latent), self.mask_token,
                                self.decoder_pos_embed, mask)
        for block in self.decoder_blocks:
            x = block(x, rel_pos_bias=None)
        num_masked = x.shape[1] - latent.shape[1]
        return self.decoder_pred(self.ln1(x[:, x.shape[1] - num_masked:]))


@MODELS.register_module()
class MAEPytorchHead(BaseModule):
    """MAE-pytorch's target and loss.

    Args:
        patch_size: p. mean, std: the per-channel statistics the data preprocessor normalised
            with, in [0, 1] units (ImageNet's, as MAE-pytorch's transform), undone for the target.
        norm_pix: normalise each patch and channel (its ``--normlize_target``, default True).
        eps: added to the unbiased std (1e-6).
    """

    def __init__(self, patch_size: int = 16, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), norm_pix: bool = True,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.norm_pix = norm_pix
        self.eps = eps
        self.mean, self.std = tuple(mean), tuple(std)

    def target(self, images: Tensor, mask: Tensor) -> Tensor:
        """``(B, M, p*p*C)`` targets of the masked patches of normalised ``images``
        ``(B, C, H, W)``; each row laid out (row in patch, column in patch, channel)."""
        mean, std = (images.new_tensor(v).view(1, -1, 1, 1) for v in (self.mean, self.std))
        pixels = images * std + mean
        b, c, h, w = pixels.shape
        p = self.patch_size
        patches = pixels.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(b, (h // p) * (w // p), p * p, c)
        if self.norm_pix:
            std = patches.var(dim=-2, unbiased=True, keepdim=True).sqrt()
            patches = (patches - patches.mean(dim=-2, keepdim=True)) / (std + self.eps)
        patches = patches.flatten(2)
        return patches[mask].reshape(b, -1, p * p * c)

    def loss(self, pred: Tensor, images: Tensor, mask: Tensor) -> Tensor:
        """Mean squared error of ``pred`` ``(B, M, p*p*C)`` against :meth:`target`."""
        with torch.no_grad():
            target = self.target(images, mask)
        return F.mse_loss(pred, target)


def check_target_stats(preprocessor: nn.Module, head: nn.Module) -> None:
    """Refuse a head whose ``mean``/``std`` (in [0, 1] units) are not the preprocessor's
    (0-255 units): the target would be computed from wrongly restored pixels."""
    pre = [getattr(preprocessor, name, None) for name in ('mean', 'std')]
    if any(stat is None or stat.is_meta for stat in pre) or not hasattr(head, 'mean'):
        return  # nothing to compare (built on the meta device: shapes only)
    ours = [torch.tensor(stat) * 255 for stat in (head.mean, head.std)]
    if any(len(o) != p.numel() or not torch.allclose(o, p.flatten().float().cpu(), atol=1e-2)
           for o, p in zip(ours, pre)):
        raise ValueError(f'head mean/std {head.mean}/{head.std} (x255: '
                         f'{[o.tolist() for o in ours]}) are not the data_preprocessor\'s '
                         f'{[p.flatten().tolist() for p in pre]}: MAEPytorchHead undoes that '
                         'normalisation for its target. Fix: set them to the preprocessor\'s '
                         'values / 255.')


@MODELS.register_module()
class MAEPytorch(MaskConsumer, MAE):
    """MAE-pytorch's pretraining: ``MAEPytorchViT`` -> ``MAEPytorchDecoder`` ->
    ``MAEPytorchHead``.

    Args:
        mask_ratio: masked fraction when the data samples carry no ``mask``
            (``int(mask_ratio * L)`` patches, :func:`count_mask`).
        **kwargs: mmpretrain ``MAE``'s (``backbone``, ``neck``, ``head``, ...).
    """

    def __init__(self, *args, mask_ratio: float = 0.75, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_ratio = mask_ratio
        count_mask(1, self.backbone.patch_resolution[0] * self.backbone.patch_resolution[1],
                   mask_ratio)  # refuses a ratio that leaves nothing to mask or to see
        check_mask_fields(self)
        check_target_stats(self.data_preprocessor, self.head)

    def consumed_fields(self) -> Tuple[str, ...]:
        """``mask``: the predicted patches, hidden from the encoder."""
        return ('mask', )

    def draw_mask(self, inputs: Tensor, data_samples: Optional[List[DataSample]]) -> Tensor:
        """``(B, L)`` bool: the data samples' ``mask``, else :func:`count_mask`."""
        mask, _ = sample_masks(data_samples)
        if mask is not None:
            return mask.to(inputs.device)
        grid = self.backbone.patch_resolution
        return count_mask(len(inputs), grid[0] * grid[1], self.mask_ratio, device=inputs.device)

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """``loss``: MSE of the masked patches of ``inputs`` ``(B, 3, H, W)``."""
        mask = self.draw_mask(inputs, data_samples)
        latent = self.backbone(inputs, mask)
        pred = self.neck(latent, mask)
        return dict(loss=self.head.loss(pred, inputs, mask))
