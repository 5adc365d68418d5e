"""Parameter names of the official MAE / SupMAE / SemMAE checkpoints -> mmpretrain's.

The three official repositories train timm 0.3 style ViTs and save ``{'model': state_dict}``.
Their names map one to one onto the stock mmpretrain modules our configs build:

==========================================  =================================================
official (timm layout)                      mmpretrain
==========================================  =================================================
``cls_token``, ``pos_embed``                ``backbone.cls_token``, ``backbone.pos_embed``
``patch_embed.proj.*``                      ``backbone.patch_embed.projection.*``
``blocks.N.norm1.*`` / ``norm2.*``          ``backbone.layers.N.ln1.*`` / ``ln2.*``
``blocks.N.attn.qkv.*`` / ``attn.proj.*``   ``backbone.layers.N.attn.qkv.*`` / ``attn.proj.*``
``blocks.N.mlp.fc1.*`` / ``mlp.fc2.*``      ``backbone.layers.N.ffn.layers.0.0.*`` / ``.1.*``
``norm.*`` (final norm)                     ``backbone.ln1.*`` (``final_norm=True``)
``fc_norm.*`` (global-pool fine-tune)       ``backbone.ln2.*`` (``out_type='avg_featmap'``)
``head.*`` (fine-tuned classifier)          ``head.fc.*`` (``LinearClsHead``)
``head.0.*`` / ``head.1.*`` (linear probe)  ``neck.bn.*`` / ``head.layers.head.*``
``mask_token``, ``decoder_pos_embed``       ``neck.mask_token``, ``neck.decoder_pos_embed``
``decoder_embed.*`` / ``decoder_pred.*``    ``neck.decoder_embed.*`` / ``neck.decoder_pred.*``
``decoder_blocks.N.*``                      ``neck.decoder_blocks.N.*`` (block names as above)
``decoder_norm.*``                          ``neck.ln1.*`` (``MAEPretrainDecoder``)
``cls_head.*`` (SupMAE branch)              ``cls_head.fc.*`` (``VisibleTokenClsHead``)
==========================================  =================================================

Both sides use one fused ``qkv`` projection (q, k, v stacked in that order), pre-norm blocks,
LayerNorm eps 1e-6 and GELU, so tensors are copied unchanged.
"""
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Pattern, Tuple

from torch import Tensor

from .errors import UserInputError

# (official block part, mmpretrain TransformerEncoderLayer part)
BLOCK_PARTS = (('norm1', 'ln1'), ('attn.qkv', 'attn.qkv'), ('attn.proj', 'attn.proj'),
               ('norm2', 'ln2'), ('mlp.fc1', 'ffn.layers.0.0'), ('mlp.fc2', 'ffn.layers.1'))
PARAM = r'(weight|bias)'


def _rules() -> Tuple[Tuple[Pattern, str], ...]:
    """(full-match pattern on the official name, replacement template)."""
    rules = [
        (r'cls_token', 'backbone.cls_token'),
        (r'pos_embed', 'backbone.pos_embed'),
        (rf'patch_embed\.proj\.{PARAM}', r'backbone.patch_embed.projection.\1'),
        (rf'norm\.{PARAM}', r'backbone.ln1.\1'),
        (rf'fc_norm\.{PARAM}', r'backbone.ln2.\1'),
        (rf'head\.{PARAM}', r'head.fc.\1'),
        # the official linear probe: Sequential(BatchNorm1d(affine=False), Linear)
        (r'head\.0\.(running_mean|running_var|num_batches_tracked)', r'neck.bn.\1'),
        (rf'head\.1\.{PARAM}', r'head.layers.head.\1'),
        (r'mask_token', 'neck.mask_token'),
        (r'decoder_pos_embed', 'neck.decoder_pos_embed'),
        (rf'decoder_embed\.{PARAM}', r'neck.decoder_embed.\1'),
        (rf'decoder_norm\.{PARAM}', r'neck.ln1.\1'),
        (rf'decoder_pred\.{PARAM}', r'neck.decoder_pred.\1'),
        # SupMAE's branch is a bare Linear or Sequential(Linear, BN, ReLU, Linear); ours wraps
        # the same layers, in the same order, as `fc`
        (r'cls_head\.(.+)', r'cls_head.fc.\1'),
    ]
    for src, dst in (('blocks', 'backbone.layers'), ('decoder_blocks', 'neck.decoder_blocks')):
        for part, new in BLOCK_PARTS:
            rules.append((rf'{src}\.(\d+)\.{re.escape(part)}\.{PARAM}', rf'{dst}.\1.{new}.\2'))
    return tuple((re.compile(pattern), repl) for pattern, repl in rules)


RULES = _rules()
# what every official ViT checkpoint has; its absence means the file is something else
REQUIRED = ('patch_embed.proj.weight', 'blocks.0.attn.qkv.weight')


class CheckpointLayoutError(UserInputError):
    """The file is not a checkpoint in the official (timm) ViT layout."""


class Conversion(NamedTuple):
    """``state_dict`` with mmpretrain names; ``unknown``: official names left out (no match)."""
    state_dict: Dict[str, Tensor]
    unknown: List[str]


def map_key(name: str) -> Optional[str]:
    """The mmpretrain name of official parameter ``name``, or None when it has none."""
    for pattern, repl in RULES:
        match = pattern.fullmatch(name)
        if match:
            return match.expand(repl)
    return None


def unwrap_state_dict(checkpoint: Any) -> Dict[str, Tensor]:
    """The parameters of a loaded checkpoint: ``checkpoint['model']`` (the official repos),
    ``checkpoint['state_dict']``, or the checkpoint itself when it is a flat name -> tensor dict."""
    if isinstance(checkpoint, Mapping):
        for key in ('model', 'state_dict'):
            if isinstance(checkpoint.get(key), Mapping):
                return dict(checkpoint[key])
        if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            return dict(checkpoint)
    found = sorted(checkpoint)[:8] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
    raise CheckpointLayoutError(
        f'No parameters found in the checkpoint (top level: {found}): expected a dict with '
        "'model' (official MAE/SupMAE/SemMAE files), 'state_dict' (iBOT backbones, mmengine), "
        "'teacher' / 'student' (DINO / iBOT training checkpoints), or a flat name -> tensor "
        'dict (DINO backbones). Fix: pass the .pth file released by the official repository.')


def check_layout(state_dict: Mapping[str, Tensor]) -> None:
    """Raise ``CheckpointLayoutError`` unless ``state_dict`` has the official timm ViT names."""
    names = sorted(state_dict)
    if any(name.startswith('backbone.') for name in names):
        raise CheckpointLayoutError(
            'This checkpoint already has mmpretrain names (backbone.*): there is nothing to '
            "convert. Fix: use it directly, e.g. init_cfg=dict(type='Pretrained', checkpoint=..., "
            "prefix='backbone.').")
    missing = [name for name in REQUIRED if name not in state_dict]
    if missing:
        raise CheckpointLayoutError(
            'Not an official MAE/SupMAE/SemMAE/DINO/iBOT ViT checkpoint: '
            f'{missing} missing (the file has {names[:6]}{" ..." if len(names) > 6 else ""}). '
            'Expected timm-style names: cls_token, pos_embed, patch_embed.proj.*, blocks.N.{norm1,'
            'attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*, norm.*. Fix: pass '
            'mae_pretrain_vit_{base,large,huge}.pth, a full pretraining checkpoint of the official '
            'code, one of its fine-tuned files, or a DINO / iBOT ViT checkpoint.')


def convert_official_vit(state_dict: Mapping[str, Tensor]) -> Conversion:
    """Rename an official timm-layout ViT / MAE / SupMAE state dict to mmpretrain names.

    Tensors are kept as they are (same objects). Names without an mmpretrain counterpart are
    returned in ``unknown``, sorted, for the caller to report; they are not in the result.
    """
    check_layout(state_dict)
    converted, unknown = {}, []
    for name, value in state_dict.items():
        new = map_key(name)
        if new is None:
            unknown.append(name)
        else:
            converted[new] = value
    return Conversion(converted, sorted(unknown))
