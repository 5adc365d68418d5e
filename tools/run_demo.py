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
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

from mim_plugins.apis import run_cli
from mim_plugins.visualization import render_mae_reconstructions

from demo_stages import (PRETRAIN, ROOT, Stages, data_options, evaluate, parse_args,
                         prepare_data, pretrain, print_table, run_tool, train_and_test)

KNN = 'configs/mae/benchmarks/vit-tiny-p4_1xb250-knn-k20_mnist5k-500.py'
PIXELS = 'configs/mae/benchmarks/pixels_1xb64-linear-coslr-15e_mnist5k-500.py'
PROTOCOLS = ['fine-tune', 'linear probe', 'k-NN']


def knn_probe(config: str, checkpoint: Optional[str], out: str, data_root: str) -> float:
    """tools/knn_probe.py (no checkpoint: the config's random init / raw pixels); top-1 %."""
    run_tool(['tools/knn_probe.py', config] + ([checkpoint] if checkpoint else []) +
             ['--out', out, '--cfg-options'] +
             [f'{k}_dataloader.dataset.data_root={data_root}' for k in ('train', 'val')])
    with open(out) as f:
        return float(json.load(f)['accuracy/top1'])


def baselines(stages: Stages, inits: Dict[str, Optional[str]], work: str, data_root: str,
              epochs: Optional[int]) -> Dict[Tuple[str, str], float]:
    """The raw-pixel linear probe, and the k-NN probe of each ``{name: checkpoint or None}``
    and of raw pixels; returns ``{(protocol, name): top-1}``."""
    stages.begin('linear probe of raw pixels')
    results = {('linear probe', 'raw pixels'): train_and_test(
        PIXELS, osp.join(work, 'linear_probe_raw_pixels'), data_options(data_root, epochs),
        'accuracy/top1')}
    print(f"[demo] linear probe of raw pixels: top-1 "
          f"{results[('linear probe', 'raw pixels')]:.2f}%", flush=True)
    stages.end()
    runs = {name: (KNN, ckpt) for name, ckpt in inits.items()}
    runs['raw pixels'] = (PIXELS, None)  # the RawPixels backbone: nothing to load
    for init, (config, ckpt) in runs.items():
        stages.begin(f'k-NN probe of {init}')
        out = osp.join(work, f"knn_{init.replace(' ', '_')}.json")
        results[('k-NN', init)] = knn_probe(config, ckpt, out, data_root)
        print(f'[demo] k-NN of {init}: top-1 {results[("k-NN", init)]:.2f}%', flush=True)
        stages.end()
    return results


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
