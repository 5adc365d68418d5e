"""The segmentation demo: UperNet (trained end to end) and a linear probe (frozen encoder) on
the MNIST-5k digits as 28x28 segmentation images in ADE20K's layout, each from the main job's
MAE and from a random init, mIoU side by side (~5 min on 2 CPU cores once the main job's MAE
exists; it is pretrained first otherwise).

    python tools/run_seg_demo.py [--work-dir work_dirs/demo] [--checkpoint MAE.pth]

1. the main job's MAE checkpoint (``WORK_DIR/mae_pretrain``; if the main job has not run, its
   MAE pretraining runs here first, on MNIST-5k written as the main job writes it);
2. the MNIST-5k digits as 28x28 segmentation images in ADE20K's folder layout
   (``data/mnist5k_seg``: the 4000 train digits MAE was pretrained on, the 1000 val digits);
3. UperNet (configs_seg/mae/mae-tiny-p4_upernet_...: 300 iterations, everything trained) and
   the linear probe (configs_seg/mae/mae-tiny-p4_linear_...: one epoch, encoder frozen), each
   from that MAE and from a random init, through tools/train.py;
4. all four tested on the val digits through tools/test.py; the mIoUs are printed side by side.
"""
import argparse
import os.path as osp
import time
from typing import Dict, List, Optional

from mim_plugins.apis import run_cli
from mim_plugins.datasets.seg_data import prepare_mnist_seg
from mim_plugins.utils.stack import require_seg

from demo_stages import (PRETRAIN, Stages, fitted, last_checkpoint, prepare_data, pretrain,
                         print_table, train_and_test)

PROTOCOLS = {  # name: (config, work dir prefix)
    'UperNet': ('configs_seg/mae/mae-tiny-p4_upernet_1xb16-300it_mnist5k-seg-28x28.py',
                'seg_upernet'),
    'linear probe': ('configs_seg/mae/mae-tiny-p4_linear_1xb16-1e_mnist5k-seg-28x28.py',
                     'seg_linear_probe'),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='where the main job wrote its MAE, and where this demo writes')
    parser.add_argument('--checkpoint',
                        help='MAE checkpoint of the small ViT (default: the main job\'s, '
                        'WORK_DIR/mae_pretrain; pretrained first if missing)')
    parser.add_argument('--data-root', default='data/mnist5k',
                        help='MNIST-5k for the MAE pretraining, if it has to run')
    parser.add_argument('--seg-data-root', default='data/mnist5k_seg',
                        help='where the digit images are written (ADE20K layout)')
    parser.add_argument('--pretrain-epochs', type=int, help='override the MAE pretraining epochs')
    parser.add_argument('--iters', type=int,
                        help='override the UperNet iterations (300; its schedule refitted); '
                        'the linear probe always trains one epoch of the train images')
    parser.add_argument('--num-train', type=int, default=4000, help='train images')
    parser.add_argument('--num-val', type=int, default=1000, help='val images')
    return parser.parse_args(argv)


def main_job_checkpoint(work: str) -> Optional[str]:
    """The main job's MAE checkpoint in ``work``, if it has run."""
    if not osp.isfile(osp.join(work, 'mae_pretrain', 'last_checkpoint')):
        return None
    checkpoint = last_checkpoint(osp.join(work, 'mae_pretrain'))
    return checkpoint if osp.isfile(checkpoint) else None


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    require_seg('The segmentation demo')  # before any stage runs, where mmseg does not import
    work = osp.abspath(args.work_dir)
    mae_ckpt = args.checkpoint or main_job_checkpoint(work)
    stages = Stages((['data', 'pretrain'] if mae_ckpt is None else []) + ['seg data'] +
                    [name for name in PROTOCOLS for _ in range(2)])
    if mae_ckpt is None:
        data_root = osp.abspath(args.data_root) + '/'
        prepare_data(stages, data_root)
        stages.begin('MAE pretraining (the main job has not run)')
        mae_ckpt = pretrain(PRETRAIN, osp.join(work, 'mae_pretrain'),
                            [f'train_dataloader.dataset.data_root={data_root}'],
                            args.pretrain_epochs)
        stages.end()
    print(f'[demo] segmentation starts from the MAE checkpoint {mae_ckpt}', flush=True)

    stages.begin('data: MNIST-5k digits -> 28x28 segmentation images, ADE20K layout')
    seg_root = osp.abspath(args.seg_data_root)
    print(f'[demo] {seg_root}: ' + str(prepare_mnist_seg(seg_root, args.num_train, args.num_val)))
    stages.end()

    data_opts = [f'{k}_dataloader.dataset.data_root={seg_root}' for k in ('train', 'val', 'test')]
    inits = {'MAE': f'model.backbone.init_cfg.checkpoint={mae_ckpt}',
             'random init': 'model.backbone.init_cfg=None'}
    results = {}
    for protocol, (config, prefix) in PROTOCOLS.items():
        iters = args.iters if protocol == 'UperNet' else None
        for init, init_opt in inits.items():
            stages.begin(f'{protocol} from {init}')
            run_dir = osp.join(work, f"{prefix}_{init.replace(' ', '_')}")
            results[(protocol, init)] = train_and_test(fitted(config, iters, run_dir), run_dir,
                                                       data_opts + [init_opt], 'mIoU')
            print(f'[demo] {protocol} from {init}: mIoU {results[(protocol, init)]:.2f}%',
                  flush=True)
            stages.end()

    minutes = (time.time() - stages.start) / 60
    print_table(results, list(PROTOCOLS), list(inits),
                f'mIoU (10 digit classes) on the {args.num_val} val digits, each protocol '
                f'trained the same way from both inits, total {minutes:.1f} min')
    return {f'{p} / {i}': v for (p, i), v in results.items()}


if __name__ == '__main__':
    run_cli(main)
