"""The main job: MAE pretraining of a small ViT on the embedded MNIST-5k, then fine-tune, linear
probe and k-NN accuracies of MAE vs. random init vs. raw pixels, and a reconstruction figure
(~10 min on CPU).

    python tools/run_demo.py [--work-dir work_dirs/demo]

1. write MNIST-5k once in the CustomDataset layout (data/mnist5k);
2. pretrain the small ViT with MAE (configs/mae/...mnist5k.py) through tools/train.py;
3. fine-tune and linear-probe it on 500 labelled images, and do the same from a random init;
4. test all four through tools/test.py;
5. the baselines: the same linear probe on the raw pixels, and a k-NN probe
   (tools/knn_probe.py) of MAE, random init and raw pixels; print every accuracy in one table;
6. save original / masked / reconstruction figures for a few val images.

Every stage runs the real tools in a subprocess, exactly as a user would.
"""
import os
import os.path as osp
import time
from typing import Dict, List, Optional

from mim_plugins.apis import run_cli
from mim_plugins.visualization import render_mae_reconstructions

from demo_stages import (PRETRAIN, ROOT, Stages, baselines, evaluate, parse_args, prepare_data,
                         pretrain, print_table)

PROTOCOLS = ['fine-tune', 'linear probe', 'k-NN']


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(__doc__.split('\n')[0], argv)
    work = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root) + '/'
    stages = Stages(['data', 'pretrain'] + ['fine-tune'] * 2 + ['linear probe'] * 3 +
                    ['k-NN'] * 3 + ['figure'])
    prepare_data(stages, data_root)

    stages.begin('MAE pretraining')
    mae_ckpt = pretrain(PRETRAIN, osp.join(work, 'mae_pretrain'),
                        [f'train_dataloader.dataset.data_root={data_root}'], args.pretrain_epochs)
    stages.end()
    inits = {'MAE': mae_ckpt, 'random init': None}
    results = evaluate(stages, inits, work, data_root, args.eval_epochs)
    results.update(baselines(stages, inits, work, data_root, args.eval_epochs))

    stages.begin('reconstruction figure')
    figure = osp.join(work, 'mae_reconstruction.png')
    val_dir = osp.join(data_root, 'val')
    images = [osp.join(val_dir, d, sorted(os.listdir(osp.join(val_dir, d)))[0])
              for d in sorted(os.listdir(val_dir))[:8]]
    render_mae_reconstructions(osp.join(ROOT, PRETRAIN), mae_ckpt, images, figure)
    stages.end()

    by_encoder = {(init, proto): top1 for (proto, init), top1 in results.items()}
    print_table(by_encoder, ['MAE', 'random init', 'raw pixels'], PROTOCOLS,
                'top-1 accuracy on the 1000 MNIST-5k val images (500 labelled training '
                f'images), total {(time.time() - stages.start) / 60:.1f} min')
    print(f'[demo] reconstructions: {figure}')
    return {f'{p} / {i}': v for (p, i), v in results.items()}


if __name__ == '__main__':
    run_cli(main)
