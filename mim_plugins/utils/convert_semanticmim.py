"""Official SemanticMIM checkpoints (``yyk-wew/SemanticMIM``) -> our bottleneck models' names.

The official MaskFeat / BEiT backbones (``MaskFeatViTOurs``, ``BEiTPretrainViTOurs``) are
mmpretrain modules re-written with split projections and a second stack; the conversion is exact
(same outputs, checked against golden outputs of the official code by
``tools/analysis/official_parity.py``):

=================================================  =============================================
official                                           ours (``BottleneckMaskFeatViT`` / ``...BEiTViT``)
=================================================  =============================================
``cls_token`` ``(1, N, C)``                        ``cls_token`` = row 0; ``extra_cls_tokens`` =
``pos_embed`` ``(1, N + L, C)``                    rows 1..N-1; ``pos_embed`` = row 0 and the L
                                                   patch rows; ``extra_cls_pos_embed`` = rows
                                                   1..N-1 (the same parameters, so the same
                                                   AdamW steps, decay and clipping)
``layers.i.attn.q`` + ``attn.kv`` (MaskFeat)       ``layers.i.attn.qkv`` (q | k | v rows)
``layers.i.attn.q_proj`` + ``kv_proj`` (BEiT)      ``layers.i.attn.qkv.weight`` (k bias is 0 in
                                                   both; ``q_bias``, ``v_bias`` kept)
``extra_layers.i.*``                               ``bottleneck_layers.i.*`` (same rules)
``ln1``, ``mask_token``, ``patch_embed``, norms,   unchanged
FFNs, ``gamma_1``/``gamma_2``
=================================================  =============================================

A full training checkpoint (``backbone.`` / ``neck.`` / ``head.`` / ``target_generator.``
prefixes, mmengine's layout) keeps its other modules' names: the official code builds them from
mmpretrain's own ``LinearNeck``, ``MIMHead``, ``HOGGenerator``, ``DALL-E`` and a copy of
``BEiTV1Head`` with the same ``cls_head`` name.
"""
import re
from typing import Dict, Mapping, NamedTuple, Optional

import torch
from torch import Tensor

from .errors import UserInputError

FAMILIES = {'maskfeat': 'layers.0.attn.q.weight', 'beit': 'layers.0.attn.q_proj.weight'}


class SemanticMIMLayoutError(UserInputError):
    """The state dict is not one of the official SemanticMIM backbones."""


class SemanticMIMConversion(NamedTuple):
    """``state_dict`` in our names (prefix kept), the ``family`` (``'maskfeat'``/``'beit'``),
    ``num_cls_tokens``, ``bottleneck`` (has ``extra_layers``). Every official tensor lands in
    ``state_dict``: nothing is left out."""
    state_dict: Dict[str, Tensor]
    family: str
    num_cls_tokens: int
    bottleneck: bool


def detect_family(state_dict: Mapping[str, Tensor], prefix: str = '') -> Optional[str]:
    """``'maskfeat'`` / ``'beit'`` if ``state_dict`` holds an official SemanticMIM backbone under
    ``prefix`` (its split ``attn.q``/``attn.kv`` or ``q_proj``/``kv_proj`` show it), else None."""
    for family, key in FAMILIES.items():
        if prefix + key in state_dict:
            return family
    return None


def backbone_prefix(state_dict: Mapping[str, Tensor]) -> str:
    """``'backbone.'`` for a full training checkpoint, ``''`` for a bare backbone state dict."""
    return 'backbone.' if detect_family(state_dict, 'backbone.') else ''


def _fuse_attention(get, layer: str, family: str) -> Dict[str, Tensor]:
    """Our ``attn.qkv`` (and biases) of official ``layer`` (e.g. ``'layers.3'``)."""
    attn = f'{layer}.attn'
    if family == 'maskfeat':
        return {f'{attn}.qkv.weight': torch.cat([get(f'{attn}.q.weight'), get(f'{attn}.kv.weight')]),
                f'{attn}.qkv.bias': torch.cat([get(f'{attn}.q.bias'), get(f'{attn}.kv.bias')])}
    return {f'{attn}.qkv.weight': torch.cat([get(f'{attn}.q_proj.weight'),
                                             get(f'{attn}.kv_proj.weight')]),
            f'{attn}.q_bias': get(f'{attn}.q_bias'), f'{attn}.v_bias': get(f'{attn}.v_bias')}


def convert_semanticmim(state_dict: Mapping[str, Tensor]) -> SemanticMIMConversion:
    """Convert an official SemanticMIM backbone or training state dict to our names.

    Only differentiable tensor operations (``cat``, slices, ``+``) build the result, so
    gradients with respect to the official tensors can be read through it.
    """
    prefix = backbone_prefix(state_dict)
    family = detect_family(state_dict, prefix)
    if family is None:
        names = sorted(state_dict)
        raise SemanticMIMLayoutError(
            'Not an official SemanticMIM backbone: neither layers.0.attn.q.weight (MaskFeat) nor '
            f'layers.0.attn.q_proj.weight (BEiT) is there (the file has {names[:6]}'
            f'{" ..." if len(names) > 6 else ""}). Fix: pass a checkpoint written by the official '
            "SemanticMIM code, or use tools/model_converters/official_to_mmpretrain.py's other "
            'layouts (MAE / SupMAE / SemMAE).')
    used = set()

    def get(name: str) -> Tensor:
        used.add(prefix + name)
        if prefix + name not in state_dict:
            raise SemanticMIMLayoutError(
                f'Official SemanticMIM {family} checkpoint without {prefix + name}: the file is '
                'truncated or from another version. Fix: pass the checkpoint as the official '
                'training wrote it.')
        return state_dict[prefix + name]

    cls, pos = get('cls_token'), get('pos_embed')
    num_cls = cls.shape[1]
    out = {'cls_token': cls[:, :1], 'pos_embed': torch.cat([pos[:, :1], pos[:, num_cls:]], 1)}
    if num_cls > 1:
        out['extra_cls_tokens'] = cls[:, 1:]
        out['extra_cls_pos_embed'] = pos[:, 1:num_cls]
    attn_parts = re.compile(r'(layers|extra_layers)\.(\d+)\.attn\.(q|kv|q_proj|kv_proj|q_bias|v_bias)'
                            r'(\.weight|\.bias)?')
    stacks = set()
    for full in state_dict:
        if not full.startswith(prefix) or full in used:
            continue
        name = full[len(prefix):]
        match = attn_parts.fullmatch(name)
        if match:
            layer = f'{match.group(1)}.{match.group(2)}'
            if layer not in stacks:
                stacks.add(layer)
                fused = _fuse_attention(get, layer, family)
                out.update({k.replace('extra_layers.', 'bottleneck_layers.', 1): v
                            for k, v in fused.items()})
            continue
        used.add(full)
        out[re.sub(r'^extra_layers\.', 'bottleneck_layers.', name)] = state_dict[full]
    converted = {prefix + name: value for name, value in out.items()}
    if prefix:  # the other modules of a training checkpoint keep their (mmpretrain) names
        for full, value in state_dict.items():
            if not full.startswith(prefix):
                converted[full] = value
    bottleneck = any(k.startswith(prefix + 'extra_layers.') for k in state_dict)
    return SemanticMIMConversion(converted, family, num_cls, bottleneck)
