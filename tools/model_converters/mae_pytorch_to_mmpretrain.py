"""Convert a pengzhiliang/MAE-pytorch checkpoint (pretraining or fine-tuned) to our names.

    python tools/model_converters/mae_pytorch_to_mmpretrain.py SRC.pth DST.pth [--layout vit]

SRC: a file of its run_mae_pretraining.py ({'model': encoder.* / decoder.* ...}) or of its
run_class_finetuning.py (mean pooling: blocks.*, fc_norm, head). DST: {'state_dict', 'meta'}.

--layout beit (default): a pretraining file becomes our MAEPytorch model (resume or continue
    with configs/mae/mae-pytorch_*.py); its backbone.* also loads into a stock BEiTViT
    (with_cls_token=False, use_abs_pos_emb=True, use_rel_pos_bias=False) for fine-tuning and
    linear probing; a fine-tuned file becomes that BEiTViT (final_norm=False,
    out_type='avg_featmap') + LinearClsHead.
--layout vit: the same for a stock VisionTransformer (with_cls_token=False), the layout
    UperNet backbones read; the pretraining decoder is left out.
Load with model.backbone.init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.').
The position tables are the fixed 1-D ones for --img-size (default 224). Anything else (other
names, shapes that do not fit one model) is refused with one line; see
mim_plugins/utils/convert_mae_pytorch.py for the name table.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import torch

from mim_plugins.apis import UserInputError, run_cli
from mim_plugins.utils.convert import unwrap_state_dict
from mim_plugins.utils.convert_mae_pytorch import LAYOUTS, convert_mae_pytorch


def load(path: str) -> dict:
    """SRC's tensors, read without running pickled code (its files also hold the training
    ``argparse.Namespace``)."""
    if not osp.isfile(path):
        raise UserInputError(f"Checkpoint '{path}' does not exist. Fix: pass the path of the "
                             'MAE-pytorch .pth file.')
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file gets the same answer)
        raise UserInputError(f"'{path}' cannot be read as a PyTorch checkpoint ({exc}). Fix: pass "
                             'a file written by MAE-pytorch (download it again if truncated).'
                             ) from exc
    return unwrap_state_dict(checkpoint)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='MAE-pytorch checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the converted checkpoint (.pth)')
    parser.add_argument('--layout', choices=LAYOUTS, default='beit',
                        help='beit: our MAEPytorch / stock BEiTViT; vit: stock VisionTransformer')
    parser.add_argument('--img-size', type=int, default=224,
                        help='image size of the position tables (the file does not hold them)')
    args = parser.parse_args(argv)
    if osp.abspath(args.dst) == osp.abspath(args.src) or (
            osp.exists(args.dst) and osp.samefile(args.dst, args.src)):
        raise UserInputError(f"DST '{args.dst}' is SRC: converting in place would destroy the "
                             'original. Fix: pass another output path.')
    result = convert_mae_pytorch(load(args.src), args.layout, img_size=args.img_size)
    state = {k: v.detach().clone().contiguous() for k, v in result.state_dict.items()}
    layer_scale = any('gamma' in k for k in state)
    meta = dict(source=osp.basename(args.src), kind=result.kind, layout=args.layout,
                img_size=args.img_size, layer_scale=layer_scale, dropped=result.dropped)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    tmp = f'{args.dst}.tmp'
    torch.save(dict(state_dict=state, meta=meta), tmp)
    os.replace(tmp, args.dst)  # no half-written DST if interrupted
    print(f'Converted MAE-pytorch {result.kind} checkpoint ({len(state)} tensors, layout '
          f'{args.layout}) -> {args.dst}')
    if layer_scale:
        print('It has layer scale: build the backbone with layer_scale_init_value > 0.')
    if result.dropped:
        print(f'Left out {len(result.dropped)} decoder tensors (pretraining only).')


if __name__ == '__main__':
    run_cli(main)
