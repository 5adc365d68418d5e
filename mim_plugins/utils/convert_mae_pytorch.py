"""pengzhiliang/MAE-pytorch checkpoints -> our names, in two layouts.

Its files are ``{'model': state_dict}``, either of its pretraining model (``encoder.*``,
``decoder.*``, ``encoder_to_decoder.weight``, ``mask_token``) or of its fine-tuned classifier
(``patch_embed.*``, ``blocks.*``, ``fc_norm.*``, ``head.*``, mean pooling). Neither holds a
position table: it is the fixed 1-D one, which the conversion writes.

``layout='beit'``: our ``MAEPytorch`` (``backbone.*`` in ``BEiTViT`` names, ``neck.*``), and for
a fine-tuned file ``backbone.*`` + ``head.fc.*`` for a stock ``BEiTViT`` (``with_cls_token=False,
use_abs_pos_emb=True, use_rel_pos_bias=False, final_norm=False, out_type='avg_featmap'``) with a
``LinearClsHead``. Tensors are copied unchanged:

=====================================  ================================================
MAE-pytorch (``encoder.`` stripped)    ``backbone.``
=====================================  ================================================
``patch_embed.proj.*``                 ``patch_embed.projection.*``
``blocks.N.norm1`` / ``norm2``         ``layers.N.ln1`` / ``ln2``
``blocks.N.attn.{qkv.weight,q_bias,    ``layers.N.attn.{qkv.weight,q_bias,v_bias,proj.*}``
v_bias,proj.*}``
``blocks.N.mlp.fc1`` / ``fc2``         ``layers.N.ffn.layers.0.0`` / ``ffn.layers.1``
``blocks.N.gamma_1`` / ``gamma_2``     ``layers.N.gamma_1`` / ``gamma_2``
``norm`` (pretraining)                 ``ln1``
``fc_norm`` (fine-tuned)               ``ln2``; ``head`` -> ``head.fc`` (top level)
(none)                                 ``pos_embed`` = the 1-D table
=====================================  ================================================

Decoder: ``encoder_to_decoder`` -> ``neck.decoder_embed``, ``mask_token`` -> ``neck.mask_token``,
``decoder.blocks.N`` -> ``neck.decoder_blocks.N`` (block names as above), ``decoder.norm`` ->
``neck.ln1``, ``decoder.head`` -> ``neck.decoder_pred``, + ``neck.decoder_pos_embed`` (table).

``layout='vit'``: a stock ``VisionTransformer`` (``with_cls_token=False``; for UperNet too).
The same, except ``attn.qkv.bias = cat(q_bias, 0, v_bias)`` (a k bias adds the same number to
every key's score of a query, which softmax ignores: exact), ``gamma_1`` / ``gamma_2`` ->
``attn.gamma1.weight`` / ``ffn.gamma2.weight``, and no decoder (pretraining-only).
"""
import re
from typing import Dict, List, Mapping, NamedTuple, Tuple

import torch
from torch import Tensor

from .pos_embed import sinusoid_table_1d
from .errors import UserInputError

LAYOUTS = ('beit', 'vit')
BLOCK = re.compile(r'blocks\.(\d+)\.(.+)')
BLOCK_PARTS = {'norm1.weight': 'ln1.weight', 'norm1.bias': 'ln1.bias',
               'norm2.weight': 'ln2.weight', 'norm2.bias': 'ln2.bias',
               'attn.qkv.weight': 'attn.qkv.weight', 'attn.q_bias': 'attn.q_bias',
               'attn.v_bias': 'attn.v_bias', 'attn.proj.weight': 'attn.proj.weight',
               'attn.proj.bias': 'attn.proj.bias', 'mlp.fc1.weight': 'ffn.layers.0.0.weight',
               'mlp.fc1.bias': 'ffn.layers.0.0.bias', 'mlp.fc2.weight': 'ffn.layers.1.weight',
               'mlp.fc2.bias': 'ffn.layers.1.bias', 'gamma_1': 'gamma_1', 'gamma_2': 'gamma_2'}
VIT_PARTS = {'gamma_1': 'attn.gamma1.weight', 'gamma_2': 'ffn.gamma2.weight'}


class CheckpointError(UserInputError):
    """A file that is not a MAE-pytorch checkpoint we can convert exactly."""


class Converted(NamedTuple):
    state_dict: Dict[str, Tensor]
    kind: str  # 'pretrain' or 'finetune'
    dropped: List[str]  # source names with no place in the layout (the decoder for 'vit')


def detect_kind(state_dict: Mapping[str, Tensor]) -> str:
    """``'pretrain'`` (``encoder.*``) or ``'finetune'`` (``blocks.*`` + ``fc_norm``)."""
    if 'cls_token' in state_dict or 'encoder.cls_token' in state_dict:
        raise CheckpointError('this checkpoint has a cls token, which no MAE-pytorch model has '
                              '(the official MAE / SupMAE / SemMAE layout?). Fix: convert it with '
                              'tools/model_converters/official_to_mmpretrain.py.')
    if any(k.startswith('encoder.blocks.') for k in state_dict):
        return 'pretrain'
    if any(k.startswith('blocks.') for k in state_dict) and 'fc_norm.weight' in state_dict:
        return 'finetune'
    if any(k.startswith('blocks.') for k in state_dict) and 'norm.weight' in state_dict:
        raise CheckpointError('this MAE-pytorch classifier was fine-tuned with --use_cls: it '
                              'classifies the first patch token (it has no cls token), which no '
                              'stock head reads. Fix: convert a mean-pooling (default) one.')
    raise CheckpointError(f'not a MAE-pytorch checkpoint (first names {sorted(state_dict)[:4]}): '
                          'expected encoder.blocks.* (pretraining) or blocks.* with fc_norm '
                          '(fine-tuned). Fix: pass a file written by its run_mae_pretraining.py '
                          'or run_class_finetuning.py.')


def _block(tail: str, value: Tensor, layout: str, out: Dict[str, Tensor], prefix: str) -> bool:
    """Put one block tensor (``tail`` after ``blocks.N.``) into ``out``; False if unknown."""
    if tail not in BLOCK_PARTS:
        return False
    if layout == 'vit' and tail in ('attn.q_bias', 'attn.v_bias'):
        return True  # fused into attn.qkv.bias once both are read
    name = VIT_PARTS.get(tail, BLOCK_PARTS[tail]) if layout == 'vit' else BLOCK_PARTS[tail]
    out[prefix + name] = value
    return True


def _tower(state: Mapping[str, Tensor], src: str, dst: str, layout: str,
           out: Dict[str, Tensor]) -> List[str]:
    """Convert the ``src``-prefixed blocks into ``dst`` layers; the unknown names."""
    unknown = []
    for name, value in state.items():
        match = BLOCK.fullmatch(name[len(src):]) if name.startswith(src) else None
        if match is None:
            continue
        if not _block(match.group(2), value, layout, out, f'{dst}{match.group(1)}.'):
            unknown.append(name)
        elif layout == 'vit' and match.group(2) == 'attn.q_bias':
            q_bias = value
            v_bias = state.get(f'{src}blocks.{match.group(1)}.attn.v_bias')
            if v_bias is None:
                unknown.append(name)
                continue
            out[f'{dst}{match.group(1)}.attn.qkv.bias'] = torch.cat(
                [q_bias, torch.zeros_like(q_bias), v_bias])
    return unknown


def _check_shapes(out: Mapping[str, Tensor], prefix: str, dim: int) -> None:
    """Every ``prefix`` block tensor fits the width ``dim`` (one line naming the first that
    does not)."""
    want = {'qkv.weight': (3 * dim, dim), 'qkv.bias': (3 * dim, ), 'proj.weight': (dim, dim)}
    want.update({end: (dim, ) for end in ('q_bias', 'v_bias', 'proj.bias', 'ln1.weight',
                                          'ln1.bias', 'ln2.weight', 'ln2.bias', 'gamma_1',
                                          'gamma_2', 'gamma1.weight', 'gamma2.weight')})
    for name, value in out.items():
        if not name.startswith(prefix):
            continue
        expected = next((shape for end, shape in want.items() if name.endswith(end)), None)
        if expected is not None and tuple(value.shape) != expected:
            raise CheckpointError(f'{name} has shape {tuple(value.shape)}, the width {dim} '
                                  f'needs {expected}: not the tensors of one MAE-pytorch model. '
                                  'Fix: pass an unmodified file.')


def convert_mae_pytorch(state_dict: Mapping[str, Tensor], layout: str = 'beit',
                        img_size: int = 224) -> Converted:
    """MAE-pytorch ``state_dict`` (the ``'model'`` entry) -> our names in ``layout``; the
    position tables are made for square ``img_size`` images (the file does not say it).

    Raises ``CheckpointError`` for another layout, names it does not have, or tensors whose
    shapes do not fit one model; the operations (copies, ``cat``) are differentiable.
    """
    if layout not in LAYOUTS:
        raise CheckpointError(f'unknown layout {layout!r}; choose one of {LAYOUTS}.')
    kind = detect_kind(state_dict)
    src = 'encoder.' if kind == 'pretrain' else ''
    if not any(k.endswith('attn.q_bias') for k in state_dict):
        raise CheckpointError('the blocks have no q_bias / v_bias: a model built with '
                              'qkv_bias=False, not one of MAE-pytorch\'s (all use qkv_bias=True).'
                              ' Fix: pass a file of its pretrain_mae_* / vit_* models.')
    out: Dict[str, Tensor] = {}
    unknown = _tower(state_dict, src, 'backbone.layers.', layout, out)
    singles: Dict[str, Tuple[str, ...]] = {
        f'{src}patch_embed.proj.weight': ('backbone.patch_embed.projection.weight', ),
        f'{src}patch_embed.proj.bias': ('backbone.patch_embed.projection.bias', )}
    if kind == 'pretrain':
        singles.update({'encoder.norm.weight': ('backbone.ln1.weight', ),
                        'encoder.norm.bias': ('backbone.ln1.bias', )})
        decoder = {'encoder_to_decoder.weight': 'neck.decoder_embed.weight',
                   'mask_token': 'neck.mask_token', 'decoder.norm.weight': 'neck.ln1.weight',
                   'decoder.norm.bias': 'neck.ln1.bias',
                   'decoder.head.weight': 'neck.decoder_pred.weight',
                   'decoder.head.bias': 'neck.decoder_pred.bias'}
    else:
        singles.update({'fc_norm.weight': ('backbone.ln2.weight', ),
                        'fc_norm.bias': ('backbone.ln2.bias', ),
                        'head.weight': ('head.fc.weight', ), 'head.bias': ('head.fc.bias', )})
        decoder = {}
    missing = [name for name in singles if name not in state_dict]
    if missing:
        raise CheckpointError(f'the {kind} checkpoint lacks {missing}. Fix: pass a complete, '
                              'unmodified MAE-pytorch file.')
    for name, (target, ) in singles.items():
        out[target] = state_dict[name]
    dropped: List[str] = []
    if kind == 'pretrain':
        if layout == 'beit':
            unknown += _tower(state_dict, 'decoder.', 'neck.decoder_blocks.', layout, out)
            for name, target in decoder.items():
                if name not in state_dict:
                    raise CheckpointError(f'the pretraining checkpoint lacks {name}. Fix: pass a '
                                          'complete, unmodified MAE-pytorch file.')
                out[target] = state_dict[name]
        else:
            dropped = sorted(k for k in state_dict
                             if k in decoder or k.startswith('decoder.blocks.'))
    known = set(singles) | set(decoder) | set(dropped)
    block = re.compile(rf'{re.escape(src)}blocks\.\d+\..+|decoder\.blocks\.\d+\..+')
    unknown += [k for k in state_dict
                if k not in known and not block.fullmatch(k) and k not in unknown]
    if unknown:
        raise CheckpointError(f'{len(unknown)} tensors have no counterpart: {sorted(unknown)[:6]}'
                              ' (MAE-pytorch with learnable position embeddings or without '
                              'qkv_bias is not its recipe). Fix: pass a file of its default '
                              'models (qkv_bias=True, fixed sin-cos table).')
    dim, patch = out['backbone.patch_embed.projection.weight'].shape[0::3]
    _check_shapes(out, 'backbone.', dim)
    if img_size % patch:
        raise CheckpointError(f'img_size {img_size} is not a multiple of the patch size {patch}.'
                              ' Fix: the image size the model was trained at (224).')
    num_patches = (img_size // patch)**2
    out['backbone.pos_embed'] = sinusoid_table_1d(num_patches, dim)
    if kind == 'pretrain' and layout == 'beit':
        dec = out['neck.mask_token'].shape[-1]
        _check_shapes(out, 'neck.decoder_blocks.', dec)
        out['neck.decoder_pos_embed'] = sinusoid_table_1d(num_patches, dec)
    return Converted(out, kind, dropped)

