"""Convert an official MAE / SupMAE / SemMAE checkpoint (timm-style names) to mmpretrain names.

    python tools/model_converters/official_to_mmpretrain.py SRC.pth DST.pth

SRC: MAE's mae_pretrain_vit_{base,large,huge}.pth (encoder), a full pretraining checkpoint of
the official code (encoder + decoder, SupMAE's branch), or a fine-tuned file. DST holds
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
from mim_plugins.utils.convert import convert_official_vit, unwrap_state_dict


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
                             'the .pth file released by the official MAE / SupMAE / SemMAE '
                             'repository (re-download it if it is truncated).') from exc


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the mmpretrain checkpoint (.pth)')
    args = parser.parse_args(argv)

    checkpoint = load_official(args.src)
    result = convert_official_vit(unwrap_state_dict(checkpoint))
    meta = dict(source=osp.basename(args.src), unknown_keys=result.unknown)
    if isinstance(checkpoint, dict) and 'epoch' in checkpoint:
        meta['epoch'] = checkpoint['epoch']
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=result.state_dict, meta=meta), args.dst)

    groups = Counter(name.split('.')[0] for name in result.state_dict)
    counts = ', '.join(f'{group}: {n}' for group, n in groups.items())
    print(f'Converted {len(result.state_dict)} tensors ({counts}) -> {args.dst}')
    if result.unknown:
        print(f'WARNING: {len(result.unknown)} tensors have no mmpretrain counterpart and were '
              f'not converted (listed in meta["unknown_keys"]): {", ".join(result.unknown)}')


if __name__ == '__main__':
    run_cli(main)
