"""Pack an image folder (mmpretrain's CustomDataset layout) into webdataset tar shards.

    python tools/dataset_converters/pack_shards.py DATA_ROOT OUT_DIR [--data-prefix train] \
        [--ann-file meta/train.txt] [--part-root DIR] [--samples-per-shard 1000] \
        [--name train] [--no-labels] [--no-shuffle] [--seed 0]

Writes OUT_DIR/NAME-000000.tar, ... and OUT_DIR/NAME-index.json (format: mim_plugins/datasets/
shards.py). Each sample holds the image file's bytes unchanged (``<key>.png``/``.jpg``...), its
class (``<key>.cls``, unless --no-labels) and, with --part-root, its SemMAE part map
(``<key>.part.png``, found where LoadPartMap looks for it). Keys are the images' indices in the
CustomDataset order; the samples are shuffled across shards (--seed) unless --no-shuffle.
Train from them with ShardDataset, e.g.
configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k-shards.py.
"""
import argparse
import os.path as osp
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from mmengine import fileio

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Pack an image folder into webdataset shards')
    parser.add_argument('data_root', help='data set root (CustomDataset layout)')
    parser.add_argument('out_dir', help='folder of the shards and their index')
    parser.add_argument('--data-prefix', default='train',
                        help='image folder inside the root (default: train)')
    parser.add_argument('--ann-file', default='', help='optional list of images with labels, '
                        'relative to DATA_ROOT (default: every image, class = sub-folder)')
    parser.add_argument('--part-root', help='folder of SemMAE part maps (as LoadPartMap reads '
                        'them, mirroring DATA_ROOT/DATA_PREFIX): packed as <key>.part.png')
    parser.add_argument('--samples-per-shard', type=int, default=1000,
                        help='samples per shard (default 1000; the last shard may hold fewer)')
    parser.add_argument('--name', default='train', help='shard name prefix (default: train)')
    parser.add_argument('--no-labels', action='store_true',
                        help='a flat image folder without classes: no .cls members')
    parser.add_argument('--no-shuffle', action='store_true',
                        help='keep the CustomDataset order (default: shuffle across shards)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the shuffle (default 0)')
    return parser.parse_args(argv)


def list_images(args: argparse.Namespace) -> Tuple[List[dict], Optional[tuple]]:
    """The data infos (``img_path``, ``gt_label``) of mmpretrain's CustomDataset, and its
    classes (``None`` without labels)."""
    from mmpretrain.datasets import CustomDataset
    if not osp.isdir(args.data_root):
        raise UserInputError(f"The data root '{args.data_root}' does not exist. Fix: prepare the "
                             "data set there (README.md, 'Data sets'), or pass its folder.")
    dataset = CustomDataset(data_root=args.data_root, data_prefix=args.data_prefix,
                            ann_file=args.ann_file, with_label=not args.no_labels)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    return infos, (None if args.no_labels else tuple(dataset.metainfo.get('classes') or ()))


def samples(infos: List[dict], order: np.ndarray, width: int, part_root: Optional[str],
            img_prefix: str) -> Iterator[Tuple[str, Dict[str, bytes]]]:
    """``(key, members)`` of the images in ``order``, read one at a time."""
    from mim_plugins.datasets.part_maps import part_map_path
    for i in order:
        info = infos[i]
        ext = osp.splitext(info['img_path'])[1][1:].lower()
        members = {ext: fileio.get(info['img_path'])}
        if 'gt_label' in info:
            members['cls'] = str(int(info['gt_label'])).encode()
        if part_root:
            path = part_map_path(part_root, img_prefix, info['img_path'])
            if not osp.isfile(path):
                raise UserInputError(
                    f"No part map for image '{info['img_path']}': '{path}' does not exist. Fix: "
                    'run SemMAE stage 1 (tools/part_learning/learn_parts.py) to write the maps, '
                    'or point --part-root at them.')
            members['part.png'] = fileio.get(path)
        yield f'{int(i):0{width}d}', members


def main(argv: Optional[List[str]] = None) -> None:
    from mim_plugins.datasets.shards import write_shards
    args = parse_args(argv)
    if args.samples_per_shard < 1:
        raise UserInputError(f'--samples-per-shard must be at least 1, got '
                             f'{args.samples_per_shard}. Fix: pass a positive count.')
    infos, classes = list_images(args)
    order = np.arange(len(infos))
    if not args.no_shuffle:
        order = np.random.default_rng(args.seed).permutation(len(infos))
    width = max(6, len(str(max(len(infos) - 1, 0))))
    img_prefix = osp.join(args.data_root, args.data_prefix)
    index = write_shards(samples(infos, order, width, args.part_root, img_prefix), args.out_dir,
                         args.name, args.samples_per_shard, classes)
    last = len(index['shards']) - 1
    print(f"Packed {index['samples']} samples into {last + 1} shards in {args.out_dir} "
          f"(index {args.name}-index.json). ShardDataset: data_root='{args.out_dir}', "
          f"shards='{args.name}-{{000000..{last:06d}}}.tar', index='{args.name}-index.json'.")


if __name__ == '__main__':
    run_cli(main)
