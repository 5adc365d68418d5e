"""Convert an official MAE/SupMAE/SemMAE/SemanticMIM/DINO/iBOT checkpoint to mmpretrain names.

    python tools/model_converters/official_to_mmpretrain.py SRC.pth DST.pth [--network student]

SRC: MAE's mae_pretrain_vit_{base,large,huge}.pth (encoder), a full pretraining checkpoint of
the official code (encoder + decoder, SupMAE's branch), or a fine-tuned file; a DINO / iBOT ViT,
its released backbone or its full training checkpoint, whose teacher (or, with --network
student, student) becomes backbone.*, the projection heads and iBOT's mask token left out and
listed (in meta['dropped_keys']; see mim_plugins/utils/convert_dino.py); or a checkpoint
written by the official SemanticMIM code (MaskFeat or BEiT, baseline or bottleneck: its split
q / kv projections, extra_layers, one position row per cls token; see
mim_plugins/utils/convert_semanticmim.py), which becomes our BottleneckMaskFeatViT /
BottleneckBEiTViT names (stock mmpretrain names for the ViT itself). DST holds
{'state_dict', 'meta'} with backbone./neck./head./cls_head. prefixes; fine-tune or probe with it
through model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.').
Names with no mmpretrain counterpart are listed (and kept in meta['unknown_keys']), never
dropped silently. See mim_plugins/utils/convert.py for the name table.
"""
import argparse
import os
import os.path as osp
from collections import Counter
from typing import List, Optional

import torch

from mim_plugins.apis import UserInputError, run_cli
from mim_plugins.apis.checks import check_not_source
from mim_plugins.utils.convert import convert_official_vit
from mim_plugins.utils.convert_dino import NETWORKS, pick_network, strip_wrappers
from mim_plugins.utils.convert_semanticmim import (backbone_prefix, convert_semanticmim,
                                                   detect_family)


def load_official(path: str) -> dict:
    """Load SRC without running arbitrary pickled code: tensors, containers and the
    ``argparse.Namespace`` the official training scripts store as ``args``."""
    if not osp.isfile(path):
        raise UserInputError(f"Checkpoint '{path}' does not exist. Fix: pass the path of the "
                             'downloaded official .pth file.')
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file gets the same answer)
        raise UserInputError(f"'{path}' cannot be read as a PyTorch checkpoint ({exc}). Fix: pass "
                             'the .pth file released by the official MAE / SupMAE / SemMAE / '
                             'DINO / iBOT repository (re-download it if it is truncated).') from exc


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the mmpretrain checkpoint (.pth)')
    parser.add_argument('--network', choices=NETWORKS,
                        help='which network of a DINO / iBOT training checkpoint to convert '
                        '(default: teacher, the one both papers evaluate)')
    args = parser.parse_args(argv)
    check_not_source(args.src, args.dst)

    checkpoint = load_official(args.src)
    network = pick_network(checkpoint, args.network)
    state_dict = network.state_dict
    if detect_family(state_dict, backbone_prefix(state_dict)):
        semantic = convert_semanticmim(state_dict)
        prefix = '' if backbone_prefix(state_dict) else 'backbone.'
        result_state = {prefix + k: v.detach().clone() for k, v in semantic.state_dict.items()}
        meta = dict(source=osp.basename(args.src), unknown_keys=[], family=semantic.family,
                    num_cls_tokens=semantic.num_cls_tokens, bottleneck=semantic.bottleneck)
        print(f'SemanticMIM {semantic.family} checkpoint ({semantic.num_cls_tokens} cls token(s), '
              f'{"bottleneck" if semantic.bottleneck else "baseline"})'
              + ('; its BEiT uses absolute position embeddings: downstream, set '
                 'use_abs_pos_emb=True, use_rel_pos_bias=False, use_shared_rel_pos_bias=False'
                 if semantic.family == 'beit' else ''))
        write(args.dst, result_state, meta, [])
        return
    backbone = strip_wrappers(network)
    result = convert_official_vit(backbone.state_dict)
    meta = dict(source=osp.basename(args.src), unknown_keys=result.unknown,
                dropped_keys=backbone.dropped)
    if isinstance(checkpoint, dict) and 'epoch' in checkpoint:
        meta['epoch'] = checkpoint['epoch']
    if network.network:
        meta['network'] = network.network
        other = next(n for n in NETWORKS if n != network.network)
        print(f'DINO / iBOT training checkpoint: converting its {network.network} network '
              f'(--network {other} converts the other)')
    if backbone.dropped:
        print(f'Left out {len(backbone.dropped)} pretraining-only tensors (projection heads, '
              f"iBOT's mask token; listed in meta['dropped_keys']): "
              f'{", ".join(backbone.dropped)}')
    write(args.dst, result.state_dict, meta, result.unknown)


def write(dst: str, state_dict: dict, meta: dict, unknown: List[str]) -> None:
    """Save ``{'state_dict', 'meta'}`` to ``dst`` in one step (a temporary file renamed), so an
    interrupted run leaves no half-written checkpoint, and report what was converted."""
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = f'{dst}.tmp'
    torch.save(dict(state_dict=state_dict, meta=meta), tmp)
    os.replace(tmp, dst)
    groups = Counter(name.split('.')[0] for name in state_dict)
    counts = ', '.join(f'{group}: {n}' for group, n in groups.items())
    print(f'Converted {len(state_dict)} tensors ({counts}) -> {dst}')
    if unknown:
        print(f'WARNING: {len(unknown)} tensors have no mmpretrain counterpart and were '
              f'not converted (listed in meta["unknown_keys"]): {", ".join(unknown)}')


if __name__ == '__main__':
    run_cli(main)
