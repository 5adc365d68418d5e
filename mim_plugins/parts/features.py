"""Patch features of a frozen self-supervised ViT, for part learning.

The ViT is described by an mmpretrain config (its ``model.backbone``: MAEViT, SemMAEViT, a
fine-tuning VisionTransformer, ...) and built as a plain mmpretrain ``VisionTransformer`` with
``out_type='featmap'``: every ViT of that family shares its parameter names, so any of their
checkpoints loads (``backbone.`` prefix, as our and mmpretrain's tools write them).
"""
import inspect
import os.path as osp
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.models.backbones import VisionTransformer

from ..engine.safe_checkpoints import read_checkpoint
from ..utils.errors import MissingFileError, UserInputError

# Backbone arguments that describe the architecture (and so must match the checkpoint); the
# others (masking, dropout, output, freezing, init) do not matter for frozen features.
_ARCH_KEYS = ('arch', 'img_size', 'patch_size', 'in_channels', 'qkv_bias', 'norm_cfg',
              'final_norm', 'with_cls_token', 'interpolate_mode', 'layer_scale_init_value',
              'patch_cfg', 'layer_cfgs', 'pre_norm')
# ImageNet's, for configs without a data preprocessor.
_DEFAULT_NORM = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)


def _find_norm(cfg: Config) -> Dict:
    """mean / std / to_rgb of the config's data preprocessor (looked up inside wrappers such as
    ``MaskingDataPreprocessor(preprocessor=...)``)."""
    pre = cfg.get('data_preprocessor') or cfg.get('model', {}).get('data_preprocessor')
    while isinstance(pre, dict) and 'mean' not in pre and isinstance(pre.get('preprocessor'), dict):
        pre = pre['preprocessor']
    if not isinstance(pre, dict) or 'mean' not in pre:
        return dict(_DEFAULT_NORM)
    return dict(mean=list(pre['mean']), std=list(pre['std']), to_rgb=pre.get('to_rgb', True))


def load_vit_config(config: str) -> Tuple[Dict, Dict]:
    """Read ``config`` -> (VisionTransformer kwargs, image normalisation dict(mean, std, to_rgb)).

    Raises ``UserInputError`` when the file is missing or its ``model.backbone`` is not a ViT.
    """
    if not osp.isfile(config):
        raise MissingFileError(f"Config file '{config}' does not exist. Fix: pass the config the "
                               'ViT was trained with (e.g. configs/mae/...py).')
    cfg = Config.fromfile(config)
    backbone = dict(cfg.get('model', {}).get('backbone') or {})
    if 'arch' not in backbone or 'patch_size' not in backbone:
        raise UserInputError(
            f"Config '{config}' has model.backbone={backbone.get('type')!r}, not a ViT (no arch "
            'or patch_size). Fix: pass a config whose model.backbone is an mmpretrain '
            'VisionTransformer / MAEViT (a pretraining or fine-tuning config of a ViT).')
    allowed = set(inspect.signature(VisionTransformer.__init__).parameters)
    kwargs = {k: backbone[k] for k in _ARCH_KEYS if k in backbone and k in allowed}
    return kwargs, _find_norm(cfg)


def build_frozen_vit(config: str, checkpoint: str,
                     device: str = 'cpu') -> Tuple[VisionTransformer, Dict]:
    """The config's ViT with the checkpoint's weights, in eval mode, without gradients.

    Returns (model, normalisation dict(mean, std, to_rgb)). The model maps (B, 3, H, W)
    normalised images to (B, C, h, w) last-layer patch tokens (after the final norm).
    Raises ``UserInputError`` for a missing checkpoint or one whose weights are not this ViT's.
    """
    kwargs, norm = load_vit_config(config)
    if not osp.isfile(checkpoint):
        raise MissingFileError(f"Checkpoint '{checkpoint}' does not exist. Fix: pass a .pth file "
                               'of a self-supervised ViT (e.g. work_dirs/.../epoch_N.pth).')
    model = VisionTransformer(out_type='featmap', **kwargs)
    state = read_checkpoint(checkpoint)
    state = state.get('state_dict', state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise UserInputError(f"Checkpoint '{checkpoint}' holds no state dict. Fix: pass a "
                             'checkpoint written by tools/train.py or a model converter.')
    # Full models (MAE, classifiers) keep the ViT under 'backbone.'; a bare backbone has no prefix.
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    fix = (f"Fix: pass the config the checkpoint was trained with (its model.backbone must match "
           f"the checkpoint's ViT), or a checkpoint of this config's ViT.")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        first = str(exc).split('\n\t')[1] if '\n\t' in str(exc) else str(exc)
        raise UserInputError(f"Checkpoint '{checkpoint}' does not fit the ViT of '{config}': "
                             f'{first.strip()} {fix}') from None
    if result.missing_keys:
        raise UserInputError(
            f"Checkpoint '{checkpoint}' is not a ViT of '{config}': it lacks "
            f"{len(result.missing_keys)} of its weights (e.g. {result.missing_keys[:3]}). {fix}")
    model.eval()  # (mmpretrain's ViT.train() returns None: no chaining)
    model.requires_grad_(False)
    return model.to(device), norm


def image_size(model: VisionTransformer) -> Tuple[int, int]:
    """(H, W) the ViT was built for: images are resized to it."""
    return tuple(model.patch_embed.init_input_size)


@torch.no_grad()
def patch_features(model: VisionTransformer, images: torch.Tensor,
                   grid: Sequence[int]) -> torch.Tensor:
    """(B, 3, H, W) normalised images -> (B, gh * gw, C) unit-length patch features, raster order.

    When the ViT's token grid differs from the part ``grid`` (gh, gw), the FEATURE map is resized
    to it (bilinear, antialiased when shrinking) before clustering, so every part-map cell gets a
    feature of its own area and fitting and assignment see the same kind of vector.
    """
    feats = model(images)[-1]  # (B, C, h, w)
    if tuple(feats.shape[-2:]) != tuple(grid):
        feats = F.interpolate(feats, size=tuple(grid), mode='bilinear', align_corners=False,
                              antialias=True)
    # Cosine geometry: ViT features differ by direction far more than by norm.
    return F.normalize(feats.flatten(2).transpose(1, 2), dim=-1)
