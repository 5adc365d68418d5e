"""``tools/benchmark.py parts``: the cost of SemMAE stage 1 per image, at the paper's setting by
default (a frozen ViT-B/16 as iBOT's, 224x224 images, N = 7 parts): the learned part learner's
training step, its inference (write_learned_parts.py) and the k-means baseline's inference
(learn_parts.py), each with its GFLOP per image, FLOP/s against the measured matmul peak, and
peak memory (resident, and CUDA's on a GPU).

The three steps are timed in one process in rounds whose order rotates (the median counts);
each one's memory is measured alone in a fresh process (``--in-process``: here, after the
timing, so the peaks then include everything this process holds)."""
import argparse
import json
import platform
from typing import Dict, List, Optional, Union

import torch

from ..utils.errors import UserInputError
from .cli import _run
from .parts import phase_memory, time_phases
from .peak import matmul_peak
from .report import PARTS_COLUMNS, table
from .step import step_amp_dtype

DEFAULT_CONFIG = 'configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py'


def vit_arch(text: str) -> Union[str, Dict[str, int]]:
    """``--arch``: an mmpretrain ``VisionTransformer`` arch name (``'b'``), or its sizes as
    ``embed_dims=768,num_layers=12,num_heads=12,feedforward_channels=3072``."""
    if '=' not in text:
        return text
    pairs = [item.partition('=') for item in text.split(',')]
    if any(not sep or not value.isdigit() for _, sep, value in pairs):
        raise argparse.ArgumentTypeError(f'{text!r}: expected an arch name or key=int pairs')
    return {key: int(value) for key, _, value in pairs}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/benchmark.py parts', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help="the part learner's config: its losses, decoder width and "
                        'optimizer (the ViT, N, input size and decoder depth come from the '
                        f'options below; default: {DEFAULT_CONFIG})')
    parser.add_argument('--arch', type=vit_arch, default='b',
                        help="the frozen ViT's mmpretrain VisionTransformer arch, random "
                        "weights: a name (default 'b': ViT-B, iBOT's) or embed_dims=D,"
                        'num_layers=L,num_heads=H,feedforward_channels=F')
    parser.add_argument('--img-size', type=int, default=224, help='image side (default 224)')
    parser.add_argument('--patch-size', type=int, default=16,
                        help='ViT patch side, a power of two: the decoder upsamples '
                        'log2(patch) times, back to the image size (default 16)')
    parser.add_argument('--num-parts', type=int, default=7, help='N (SemMAE: 7)')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:N]')
    parser.add_argument('--amp', action='store_true', help='autocast of the forward passes: '
                        'bf16 on CPU and on GPUs with native bf16, else fp16')
    parser.add_argument('--batch-size', type=int, help='images per step (16 on CPU, 64 on GPU)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps first, each step')
    parser.add_argument('--steps', type=int, default=5, help='timed steps per round')
    parser.add_argument('--rounds', type=int, default=3,
                        help='rounds over the three steps, the order rotating each round')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help="torch threads (default: this process's)")
    parser.add_argument('--peak-size', type=int, default=0,
                        help='side of the matmul-peak products (default: 8192 GPU, 2048 CPU)')
    parser.add_argument('--in-process', action='store_true',
                        help='measure memory in this process (default: a fresh one per step)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise UserInputError('--device cuda: no CUDA GPU is visible. Fix: run on a GPU machine, '
                             'or drop --device.')
    args.batch_size = args.batch_size or (64 if args.device.startswith('cuda') else 16)
    if min(args.batch_size, args.steps, args.rounds, args.img_size, args.patch_size,
           args.threads) < 1 or min(args.warmup, args.peak_size) < 0 or args.num_parts < 2:
        raise UserInputError('--batch-size, --steps, --rounds, --img-size, --patch-size and '
                             '--threads must be >= 1, --warmup and --peak-size >= 0, '
                             '--num-parts >= 2.')
    if args.img_size % args.patch_size:
        raise UserInputError(f'--img-size {args.img_size} is not a multiple of --patch-size '
                             f'{args.patch_size}. Fix: pass e.g. --img-size 224 --patch-size 16.')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    """Prints the matmul peak, the setting and a Markdown table (one row per step); returns
    the report that ``--json`` writes."""
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    dtype = step_amp_dtype(device) if args.amp else torch.float32
    peak = matmul_peak(device, dtype, args.peak_size)
    spec = dict(config=args.config, arch=args.arch, img_size=args.img_size,
                patch_size=args.patch_size, num_parts=args.num_parts)
    print(f'{device} {str(dtype)[6:]} matmul peak: {peak / 1e12:.3f} TFLOP/s '
          f'({args.threads} threads)', flush=True)
    print(f'frozen ViT {args.arch!r}, patch {args.patch_size}, {args.img_size}x{args.img_size} '
          f'images, N = {args.num_parts}, decoder output {args.img_size}x{args.img_size}; '
          f'batch {args.batch_size}', flush=True)
    opts = dict(device=args.device, amp=args.amp, batch_size=args.batch_size,
                warmup=args.warmup, steps=args.steps, rounds=args.rounds,
                threads=args.threads, peak_flops=peak)
    results = _run(not args.in_process, time_phases, spec, opts)
    for result in results:
        result.update(_run(not args.in_process, phase_memory, spec, result['phase'], opts))
    print(table(results, PARTS_COLUMNS))
    report = dict(
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     gpu=torch.cuda.get_device_name(device) if device.type == 'cuda' else None,
                     torch=torch.__version__, threads=args.threads),
        setting=spec, options={k: v for k, v in opts.items() if k != 'peak_flops'},
        matmul_peak_tflops=peak / 1e12, results=results)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report
