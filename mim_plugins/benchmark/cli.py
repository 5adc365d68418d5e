"""``tools/benchmark.py``: training-step throughput, FLOP/s against the measured matmul peak,
peak memory and data-pipeline throughput of pretraining configs, and ours against mmpretrain's
own implementation side by side."""
import argparse
import json
import multiprocessing
import platform
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, List, Optional

import torch

from ..utils.errors import UserInputError
from .measure import compare, measure_config
from .peak import matmul_peak
from .report import comparison_table, table
from .step import step_amp_dtype

DEFAULT_CONFIGS = [
    'configs/mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py',
    'configs/supmae/supmae_vit-base-p16_8xb512-coslr-400e_in1k.py',
    'configs/semmae/semmae_vit-base-p16_8xb256-coslr-800e_in1k.py',
    'configs/beit/beit_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/maskfeat/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/beit/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/maskfeat/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/maskfeat/maskfeat-bottleneck-sepmask_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/maskfeat/maskfeat-bottleneck-semmae_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/mae/mae-bottleneck_vit-base-p16_8xb512-coslr-800e_in1k.py',
    'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py',
]
# ours=stock pairs timed side by side (the same model recipe, our config vs mmpretrain's)
DEFAULT_COMPARE = [
    'configs/mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py='
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'configs/beit/beit_vit-base-p16_8xb256-coslr-300e_in1k.py='
    'mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    'configs/maskfeat/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py='
    'mmpretrain::maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    # SemMAE's part-guided masking against MAE's random masking (the same model otherwise)
    'configs/semmae/semmae_vit-base-p16_8xb256-coslr-800e_in1k.py='
    'configs/mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py',
    # SupMAE's supervised branch against MAE with SupMAE's 1-block decoder
    'configs/supmae/supmae_vit-base-p16_8xb512-coslr-400e_in1k.py='
    'configs/mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py@model.neck.decoder_depth=1',
    # each bottleneck against its baseline
    'configs/beit/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py='
    'configs/beit/beit_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/maskfeat/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py='
    'configs/maskfeat/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/mae/mae-bottleneck_vit-base-p16_8xb512-coslr-800e_in1k.py='
    'configs/mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py',
]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('configs', nargs='*', default=DEFAULT_CONFIGS,
                        help='pretraining configs (default: every ViT-B/16 pretraining recipe '
                        'and the demo ViT)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    parser.add_argument('--amp', action='store_true', help='autocast of the forward pass: bf16 '
                        'on CPU and on GPUs with native bf16, else fp16 with loss scaling')
    parser.add_argument('--compile', action='store_true', help='torch.compile the model')
    parser.add_argument('--batch-size', type=int, help='images per step (16 on CPU, 64 on GPU)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first')
    parser.add_argument('--steps', type=int, default=5, help='timed steps (the median counts)')
    parser.add_argument('--compare', action='append', metavar='OURS=STOCK',
                        help=f'configs to time side by side (default: {DEFAULT_COMPARE[0]}); '
                        "'none' for no comparison")
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds per comparison')
    parser.add_argument('--pipeline-images', type=int, default=64,
                        help='images for the pipeline throughput (0: skip it)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help='torch threads (default: this process\'s)')
    parser.add_argument('--in-process', action='store_true',
                        help='measure every config in this process (default: a fresh process '
                        'each, so one config\'s memory does not count in the next one\'s peak)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    args.compare = DEFAULT_COMPARE if args.compare is None else \
        [c for c in args.compare if c != 'none']
    for pair in args.compare:
        ours, sep, stock = pair.partition('=')
        if not sep or not stock or '@' in ours or ('=' in stock and '@' not in stock):
            raise UserInputError(f"--compare {pair!r}: expected OURS=STOCK, two config paths "
                                 "(only STOCK may carry @key=value overrides).")
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise UserInputError('--device cuda: no CUDA GPU is visible. Fix: run on a GPU machine, '
                             'or drop --device.')
    args.batch_size = args.batch_size or (64 if args.device.startswith('cuda') else 16)
    return args


def _run(isolated: bool, fn: Callable, *args):
    """``fn(*args)`` in a fresh (spawned) process, or here."""
    if not isolated:
        return fn(*args)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as pool:
        return pool.submit(fn, *args).result()


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    dtype = step_amp_dtype(device) if args.amp else torch.float32
    peak = matmul_peak(device, dtype)
    print(f'{device} {str(dtype)[6:]} matmul peak: {peak / 1e12:.3f} TFLOP/s '
          f'({args.threads} threads)', flush=True)
    opts = dict(device=args.device, amp=args.amp, compile=args.compile,
                batch_size=args.batch_size, warmup=args.warmup, steps=args.steps,
                rounds=args.rounds, pipeline_images=args.pipeline_images,
                threads=args.threads, peak_flops=peak)
    results = []
    for config in args.configs:
        results.append(_run(not args.in_process, measure_config, config, opts))
        print(f"{config}: {results[-1]['img_s']:.2f} img/s", flush=True)
    comparisons = [_run(not args.in_process, compare, *pair.split('=', 1), opts)
                   for pair in args.compare]
    print(table(results))
    if comparisons:
        print()
        print(comparison_table(comparisons))
    report = dict(
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     gpu=torch.cuda.get_device_name(device) if device.type == 'cuda' else None,
                     torch=torch.__version__, threads=args.threads),
        options={k: v for k, v in opts.items() if k != 'peak_flops'},
        matmul_peak_tflops=peak / 1e12, results=results, comparisons=comparisons)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report
