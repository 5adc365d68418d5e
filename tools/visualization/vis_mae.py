"""Original / masked / reconstruction / reconstruction+visible figure of an MAE-family checkpoint.

    python tools/visualization/vis_mae.py CONFIG CHECKPOINT IMAGE [IMAGE ...] --out fig.png
        [--seed 0] [--epoch E] [--part-root DIR --img-prefix DIR]

CONFIG is the pretraining config the checkpoint was trained with (configs/mae/mae_*.py, or a
SupMAE / SemMAE / MAE-bottleneck one); CHECKPOINT must hold the decoder (neck.*) too: a
checkpoint written by tools/train.py, or an official full one converted with
tools/model_converters/. One row per image, drawn by the algorithm's own ``reconstruct`` on
masks drawn from --seed as the config trains: by its MaskingDataPreprocessor's mask generator
(SemMAE: part-guided, from the part maps where the config's LoadPartMap reads them, or
--part-root / --img-prefix; λ of epoch --epoch, default the checkpoint's last), else MAE's
random mask at the encoder's ratio. The bottleneck MAE predicts only the masked patches: its
reconstruction is gray elsewhere.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='MAE reconstruction figure')
    parser.add_argument('config', help='the MAE-family pretraining config')
    parser.add_argument('checkpoint', help='a checkpoint of that model, decoder included')
    parser.add_argument('images', nargs='+', help='image files, one row each')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random masks')
    parser.add_argument('--epoch', type=int, default=None,
                        help="0-based epoch whose masks to draw (SemMAE's λ); default: the last "
                        'epoch the checkpoint trained')
    parser.add_argument('--part-root', help="folder of the images' part maps (default: the "
                        "config's LoadPartMap part_root)")
    parser.add_argument('--img-prefix', help='the image folder that --part-root mirrors')
    return parser.parse_args(argv)


def check_inputs(args: argparse.Namespace) -> None:
    """One clear error for a missing file, a config that is no MAE, a checkpoint without the
    decoder, or half of --part-root / --img-prefix."""
    from mmengine.config import Config
    from mmpretrain.models import MAE
    from mmpretrain.registry import MODELS

    from mim_plugins.engine import read_checkpoint

    if (args.part_root is None) != (args.img_prefix is None):
        raise UserInputError('--part-root and --img-prefix go together (the part map of '
                             'IMG_PREFIX/x.png is PART_ROOT/x.png). Fix: pass both, or neither '
                             "to use the config's LoadPartMap.")
    for what, path in [('Config', args.config), ('Checkpoint', args.checkpoint)] + [
            ('Image', p) for p in args.images]:
        if not osp.isfile(path):
            raise UserInputError(f"{what} '{path}' does not exist. Fix: check the path.")
    model_type = Config.fromfile(args.config).model.type
    model_cls = MODELS.get(model_type) if isinstance(model_type, str) else model_type
    if not (isinstance(model_cls, type) and issubclass(model_cls, MAE)):
        raise UserInputError(
            f"Config '{args.config}' builds a {model_type}, not an MAE-family model. Fix: pass the "
            'pretraining config the checkpoint was trained with (e.g. configs/mae/mae_*.py).')
    checkpoint = read_checkpoint(args.checkpoint)
    names = checkpoint.get('state_dict', checkpoint)
    if 'patch_embed.proj.weight' in names:
        raise UserInputError(
            f"'{args.checkpoint}' has the official repository's names. Fix: convert it first: "
            'python tools/model_converters/official_to_mmpretrain.py SRC DST.')
    if not any(name.startswith('neck.') for name in names):
        raise UserInputError(
            f"'{args.checkpoint}' has no decoder weights (neck.*): the reconstructions would come "
            'from a random decoder. Fix: use a full pretraining checkpoint (tools/train.py output, '
            'or an official one with the decoder such as MAE\'s mae_visualize_vit_large.pth, '
            'converted), not an encoder-only or fine-tuned file.')


def main(argv: Optional[List[str]] = None) -> None:
    from mim_plugins.visualization import render_mae_reconstructions

    args = parse_args(argv)
    check_inputs(args)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    note = render_mae_reconstructions(args.config, args.checkpoint, args.images, args.out,
                                      seed=args.seed, epoch=args.epoch,
                                      part_root=args.part_root, img_prefix=args.img_prefix)
    print(f'Saved {args.out}: {len(args.images)} rows of original / masked / reconstruction / '
          f'reconstruction + visible; {note}')


if __name__ == '__main__':
    run_cli(main)
