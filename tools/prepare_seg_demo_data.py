"""Write a small segmentation data set in the exact folder layout of ADE20K or PascalVOC 2012
(mmseg's ADE20KDataset / PascalVOCDataset read it): the segmentation demo's MNIST-5k digit
scenes (ADE20K layout), or coloured shapes of 6 classes in either layout.

    python tools/prepare_seg_demo_data.py                         # digits -> data/mnist5k_seg
    python tools/prepare_seg_demo_data.py --kind shapes --layout voc --out data/tiny_voc
"""
import argparse

from mim_plugins.apis import run_cli
from mim_plugins.datasets.seg_data import LAYOUTS, generate_shapes, prepare_mnist_seg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kind', choices=['digits', 'shapes'], default='digits')
    parser.add_argument('--layout', choices=LAYOUTS, default='ade20k',
                        help='folder layout (digits: ade20k only)')
    parser.add_argument('--out', help='root folder (default: data/mnist5k_seg for digits, '
                        'data/tiny_{layout} for shapes)')
    parser.add_argument('--num-train', type=int, help='train images (digits 4000, shapes 8)')
    parser.add_argument('--num-val', type=int, help='val images (digits 1000, shapes 4)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if args.kind == 'digits':
        if args.layout != 'ade20k':
            parser.error('the digit scenes are written in the ADE20K layout only')
        out = args.out or 'data/mnist5k_seg'
        counts = prepare_mnist_seg(out, args.num_train or 4000, args.num_val or 1000,
                                   seed=args.seed)
    else:
        out = args.out or f'data/tiny_{args.layout}'
        counts = generate_shapes(out, args.layout, args.num_train or 8, args.num_val or 4,
                                 seed=args.seed)
    print(f'{out}: {counts}')


if __name__ == '__main__':
    run_cli(main)
