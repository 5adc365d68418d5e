"""Write ImageNet-like JPEGs made from scikit-image's bundled photographs, in the ImageNet /
CustomDataset layout (mim_plugins/datasets/jpeg_set.py): the data of the pipeline benchmark.

    python tools/dataset_converters/make_jpeg_set.py data/jpeg_bench [--count 200] [--seed 0] \
        [--quality 90] [--spread 5] [--gray 0.05] [--cmyk 0.02] [--large 0.03] \
        [--long-side 500] [--large-side 2000] [--split train]

then e.g. `python tools/benchmark.py pipeline --data data/jpeg_bench/train`.
"""
import argparse
from typing import List, Optional

from mim_plugins.apis import run_cli
from mim_plugins.datasets.jpeg_set import JpegSetSpec, summary, write_jpeg_set


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    defaults = JpegSetSpec()
    parser = argparse.ArgumentParser(description='ImageNet-like JPEGs from scikit-image photos')
    parser.add_argument('root', help='output folder (the data root)')
    parser.add_argument('--split', default='train', help='image folder inside the root')
    parser.add_argument('--count', type=int, default=defaults.count, help='number of images')
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--quality', type=int, default=defaults.quality, help='JPEG quality')
    parser.add_argument('--spread', type=int, default=defaults.spread,
                        help='each file gets quality +- up to this much')
    parser.add_argument('--gray', type=float, default=defaults.gray,
                        help='fraction of grayscale files')
    parser.add_argument('--cmyk', type=float, default=defaults.cmyk,
                        help='fraction of CMYK files')
    parser.add_argument('--large', type=float, default=defaults.large,
                        help='fraction of large files (--large-side px long side)')
    parser.add_argument('--long-side', type=int, default=defaults.long_side,
                        help='usual long side in px')
    parser.add_argument('--large-side', type=int, default=defaults.large_side,
                        help='long side of the large files in px')
    parser.add_argument('--noise', type=float, default=defaults.noise,
                        help='sensor noise, standard deviation in 8-bit levels')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    spec = JpegSetSpec(count=args.count, seed=args.seed, long_side=args.long_side,
                       large_side=args.large_side, quality=args.quality, spread=args.spread,
                       gray=args.gray, cmyk=args.cmyk, large=args.large, noise=args.noise)
    records = write_jpeg_set(args.root, spec, args.split)
    print(f'{args.root}/{args.split}: {summary(records)}')


if __name__ == '__main__':
    run_cli(main)
