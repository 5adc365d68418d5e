"""The GPU check behind ``tools/gpu_check.sh``: every ViT-B/16 pretraining config trained for a
few steps in mixed precision, each loss checked finite, timed eager and ``torch.compile``d
(median step, img/s, GFLOP/img, MFU against the bf16 matmul peak measured in the same run),
AdamW's foreach and fused updates timed against each other, the data pipeline timed on every
core, and the CUDA tests' JUnit results, written as one JSON and one text report.

Phases run in order of importance inside a time budget: the eager steps of every config always
run, the pipeline next, then the compiled steps while the budget lasts (a config left out says
why). The report is rewritten after every config, so a run stopped early still leaves one.
"""
import argparse
import copy
import gc
import json
import math
import multiprocessing
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.logging import MMLogger
from torch._dynamo.utils import counters

from ..utils.errors import UserInputError
from .cli import DEFAULT_CONFIGS
from .measure import build_step, load_config
from .memory import reset_peak_cuda
from .peak import matmul_peak
from .pipeline import pipeline_throughput
from .report import _row
from .step import TrainStep, step_amp_dtype

GPU_CONFIGS = [c for c in DEFAULT_CONFIGS if 'vit-base-p16' in c]
SCHEMA = 'mim_plugins.gpu_check/1'
JSON_NAME, TEXT_NAME = 'gpu_check.json', 'gpu_check.txt'
# What a first compiled run (its blocks' forward and backward graphs, then the timed steps) is
# expected to take, before any was measured; later ones are predicted from the slowest so far.
FIRST_COMPILE_S = 60.0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='*', default=GPU_CONFIGS,
                        help='pretraining configs (default: every ViT-B/16 pretraining recipe)')
    parser.add_argument('--out', default=os.environ.get('OUT') or 'work_dirs/gpu_check',
                        help=f'folder for {JSON_NAME} and {TEXT_NAME} (default: $OUT, else '
                        'work_dirs/gpu_check)')
    parser.add_argument('--device', default='cuda', help='cuda[:N], or cpu for a smoke run')
    parser.add_argument('--batch-size', type=int,
                        help="images per step (default: the config's per-GPU batch)")
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps first')
    parser.add_argument('--steps', type=int, default=20,
                        help='timed training steps per config and mode (the median counts)')
    parser.add_argument('--budget-s', type=float, default=330,
                        help='seconds for the whole check; compiled runs are left out past it')
    parser.add_argument('--no-compile', action='store_true', help='eager steps only')
    parser.add_argument('--distinct-images', type=int, default=64,
                        help='distinct generated images per batch, copies fill the rest')
    parser.add_argument('--pipeline-workers', type=int, default=os.cpu_count() or 1,
                        help='processes timing the data pipeline at once (default: every core)')
    parser.add_argument('--pipeline-images', type=int, default=32,
                        help='images per worker and config (0: skip the pipeline)')
    parser.add_argument('--peak-size', type=int, default=0,
                        help='side of the matmul-peak products (default: 8192 GPU, 2048 CPU)')
    parser.add_argument('--tests-junit', help='JUnit XML of `pytest -m cuda`, merged into the '
                        'report')
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        raise UserInputError('--device cuda: no CUDA GPU is visible. Fix: run on a GPU machine, '
                             'or pass --device cpu for a smoke run.')
    if args.steps < 1 or args.warmup < 0:
        raise UserInputError(f'--steps {args.steps} --warmup {args.warmup}: need at least one '
                             'timed step and no negative warm-up. Fix: e.g. --steps 20 --warmup 3.')
    if args.tests_junit and not osp.isfile(args.tests_junit):
        raise UserInputError(f"--tests-junit '{args.tests_junit}' does not exist. Fix: give the "
                             'file `pytest --junitxml=FILE -m cuda` wrote, or drop the flag.')
    return args


def machine_info(device: torch.device, amp: torch.dtype) -> Dict:
    """Where the check ran: GPU, versions, cores, and which autocast dtype ``--amp`` chose."""
    info = dict(platform=platform.platform(), python=platform.python_version(),
                torch=torch.__version__, cuda=torch.version.cuda, cpu_count=os.cpu_count(),
                device=str(device), gpu=None, amp_dtype=str(amp).replace('torch.', ''))
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30,
                    multiprocessors=props.multi_processor_count,
                    capability=f'{props.major}.{props.minor}',
                    cudnn=torch.backends.cudnn.version())
        info['amp_reason'] = ('native bf16 on this GPU' if amp == torch.bfloat16 else
                              'no native bf16 on this GPU: fp16 with dynamic loss scaling')
    else:
        info['amp_reason'] = 'bf16 autocast on CPU'
    return info


def read_junit(path: str) -> Dict:
    """Counts and failing test names of a pytest JUnit XML file."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
    counts = dict(tests=0, failed=0, errors=0, skipped=0)
    failing, skipped = [], []
    for suite in suites:
        for case in suite.iter('testcase'):
            name = f"{case.get('classname')}::{case.get('name')}"
            counts['tests'] += 1
            if case.find('failure') is not None:
                counts['failed'] += 1
                failing.append(name)
            elif case.find('error') is not None:
                counts['errors'] += 1
                failing.append(name)
            elif case.find('skipped') is not None:
                counts['skipped'] += 1
                skipped.append(f"{name}: {case.find('skipped').get('message', '')}")
    passed = counts['tests'] - counts['failed'] - counts['errors'] - counts['skipped']
    return dict(junit=osp.basename(path), passed=passed, **counts, failing=failing,
                skipped_reasons=skipped)


def _mib(nbytes: int) -> float:
    return nbytes / 2**20


def _timed(step: TrainStep, flops: int, peak: float, warmup: int, steps: int,
           losses: List[float]) -> Dict:
    """Warm-up, then ``steps`` timed steps; the loss of every step lands in ``losses``. The
    CUDA peak is of the timed steps: the model, its gradients and optimizer state, and the
    ``steps`` copies of the batch made before them, included."""
    start = time.perf_counter()
    step.time(warmup, losses)
    warmup_s = time.perf_counter() - start
    reset_peak_cuda(step.device)
    seconds = statistics.median(step.time(steps, losses))
    result = dict(step_ms=seconds * 1e3, img_s=step.batch_size / seconds,
                  tflop_s=flops / seconds / 1e12, mfu=flops / seconds / peak,
                  warmup_s=warmup_s)
    if step.device.type == 'cuda':
        peak_bytes = torch.cuda.max_memory_allocated(step.device)
        result['cuda_peak_mib'] = _mib(peak_bytes)
        result['memory_fraction'] = \
            peak_bytes / torch.cuda.get_device_properties(step.device).total_memory
    return result


def _optimizers(step: TrainStep, steps: int) -> Dict:
    """Median ms of the optimizer update alone, AdamW's foreach (one kernel per op over a list
    of tensors) against fused (one kernel for the whole update); the config's own optimizer
    (torch's default choice) is rebuilt afterwards."""
    result = {}
    for name in ('foreach', 'fused'):
        try:
            step.rebuild_optimizer(**{name: True})
        except (TypeError, RuntimeError, ValueError) as exc:  # an optimizer without the option
            result[f'{name}_ms'] = None
            result[f'{name}_error'] = str(exc).splitlines()[0]
            continue
        step.optimizer_time(1)  # the optimizer state is allocated at the first update
        result[f'{name}_ms'] = statistics.median(step.optimizer_time(steps)) * 1e3
    step.rebuild_optimizer()
    if result.get('foreach_ms') and result.get('fused_ms'):
        result['fused_speedup'] = result['foreach_ms'] / result['fused_ms']
    return result


def _on_device(data, device: torch.device):
    """``data`` (a tensor, or lists / tuples / dicts of them) on ``device``."""
    if isinstance(data, torch.Tensor):
        return data.to(device)
    if isinstance(data, (list, tuple)):
        return type(data)(_on_device(x, device) for x in data)
    if isinstance(data, dict):
        return {k: _on_device(v, device) for k, v in data.items()}
    return data


def _step(path: str, root: str, size: int, args: argparse.Namespace) -> TrainStep:
    """The config's amp step at batch ``size``, its images already on the device: the timed
    steps are the GPU's work alone (the pipeline is timed on its own), and each step's fresh
    copy of the batch is a device-to-device copy, outside the timing."""
    step = build_step(path, osp.join(root, f'{osp.basename(path)}-{size}'),
                      dict(batch_size=size, device=args.device, amp=True,
                           distinct_images=args.distinct_images))
    step.batch['inputs'] = _on_device(step.batch['inputs'], step.device)
    return step


def _build(path: str, root: str, args: argparse.Namespace) -> TrainStep:
    """The config's step at its per-GPU batch (or ``--batch-size``), halved on CUDA out of
    memory until it fits (the first step is the test)."""
    size = args.batch_size or load_config(path).train_dataloader.batch_size
    while True:
        step = _step(path, root, size, args)
        try:
            step(copy.deepcopy(step.batch))
            return step
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
        del step  # here, not in the except block, whose traceback holds the step's tensors
        _release(torch.device(args.device))
        size //= 2


def _release(device: torch.device) -> None:
    """Give the CUDA memory of dropped steps back, so each config's peak is its own."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def check_eager(path: str, root: str, args: argparse.Namespace, peak: float) -> Dict:
    """One config's eager run: FLOPs, timed steps, AdamW foreach vs fused, losses."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    entry: Dict = dict(config=path)
    step = _build(path, root, args)
    flops = step.flops()
    entry.update(batch_size=step.batch_size, flops_per_step=flops,
                 gflop_per_img=flops / 1e9 / step.batch_size, amp_dtype=str(step.amp_dtype)[6:])
    losses: List[float] = []
    entry['eager'] = _timed(step, flops, peak, args.warmup, args.steps, losses)
    entry['optimizer'] = _optimizers(step, args.steps)
    entry['losses'] = dict(count=len(losses), first=losses[0], last=losses[-1],
                           finite=all(math.isfinite(x) for x in losses))
    del step
    _release(device)
    return entry


def check_compiled(entry: Dict, root: str, args: argparse.Namespace, peak: float) -> None:
    """The compiled run of a config :func:`check_eager` ran, at the batch it ran: every block
    of its transformer stacks ``torch.compile``d (``TrainStep.compile_blocks``). The compile
    time is the compiled warm-up's excess over the eager one."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch._dynamo.reset()  # no guards or recompiles carried over from the previous config
    counters.clear()
    step = _step(entry['config'], osp.join(root, 'compiled'), entry['batch_size'], args)
    blocks = step.compile_blocks()
    losses: List[float] = []
    compiled = _timed(step, entry['flops_per_step'], peak, args.warmup, args.steps, losses)
    # graphs: compiled pieces (a graph break splits a block in two: e.g. mmcv's DropPath
    # branches on a numpy drop rate)
    compiled.update(mode='regional', blocks=blocks, graphs=counters['stats']['unique_graphs'],
                    graph_breaks=sum(counters['graph_break'].values()))
    del step
    _release(device)
    compiled['compile_s'] = max(compiled['warmup_s'] - entry['eager']['warmup_s'], 0.0)
    compiled['speedup'] = entry['eager']['step_ms'] / compiled['step_ms']
    compiled['losses_finite'] = all(math.isfinite(x) for x in losses)
    entry['compiled'] = compiled
    entry['losses']['count'] += len(losses)
    entry['losses']['finite'] = entry['losses']['finite'] and compiled['losses_finite']


_BARRIER = None  # the pipeline workers' barrier (handed over when the process starts)


def _init_worker(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier
    if not MMLogger.check_instance_created('mim_plugins_benchmark'):
        MMLogger.get_instance('mim_plugins_benchmark', log_level='WARNING')


def _pipeline_worker(paths: Sequence[str], root: str, count: int) -> List[float]:
    """One worker's img/s through each config's pipeline, timed when all workers are ready
    (a worker that fails breaks the barrier for the others within two minutes)."""
    return [pipeline_throughput(load_config(p), osp.join(root, str(i)), count,
                                ready=partial(_BARRIER.wait, 120)) for i, p in enumerate(paths)]


def parallel_pipeline(paths: Sequence[str], root: str, workers: int, count: int) -> Dict:
    """Images per second through each config's train pipeline with ``workers`` processes at
    once, as that many dataloader workers on as many cores: the sum of the per-process rates,
    all timed together. Leaves out collation and the hand-over to the training process."""
    ctx = multiprocessing.get_context('spawn')
    barrier = ctx.Barrier(workers)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(barrier,)) as pool:
        futures = [pool.submit(_pipeline_worker, paths, osp.join(root, f'w{w}'), count)
                   for w in range(workers)]
        rates = [f.result() for f in futures]
    return {p: sum(r[i] for r in rates) for i, p in enumerate(paths)}


def _pipeline_entry(entry: Dict, img_s: float) -> Dict:
    """The pipeline's rate next to the GPU's: can the CPU side feed the faster GPU mode?"""
    gpu = max(entry[m]['img_s'] for m in ('eager', 'compiled') if 'img_s' in entry.get(m, {}))
    return dict(img_s=img_s, steps_per_s=img_s / entry['batch_size'],
                gpu_steps_per_s=gpu / entry['batch_size'], feeds_gpu=img_s >= gpu)


def problems_of(report: Dict) -> List[str]:
    """What makes the check fail: a config that did not run, a loss that is not finite, a
    failing CUDA test."""
    problems = []
    for entry in report['configs']:
        if entry.get('error'):
            problems.append(f"{entry['config']}: {entry['error']}")
            continue
        if not entry['losses']['finite']:
            problems.append(f"{entry['config']}: a loss is not finite")
        if entry.get('compiled', {}).get('error'):
            problems.append(f"{entry['config']} compiled: {entry['compiled']['error']}")
    if (report.get('pipeline') or {}).get('error'):
        problems.append(f"data pipeline: {report['pipeline']['error']}")
    tests = report.get('tests')
    if tests and (tests['failed'] or tests['errors']):
        problems.append(f"CUDA tests: {tests['failed']} failed, {tests['errors']} errors: "
                        + ', '.join(tests['failing']))
    if tests and tests['tests'] == tests['skipped']:
        problems.append('CUDA tests: every one was skipped (no GPU visible to them?)')
    return problems


def _fmt(value, fmt: str) -> str:
    return '-' if value is None else fmt.format(value)


def text_report(report: Dict) -> str:
    """The report as text: machine, the per-config table, the pipeline table, tests, verdict."""
    m = report['machine']
    lines = [f"GPU check ({report['schema']}): {'OK' if report['ok'] else 'FAILED'} in "
             f"{report['elapsed_s']:.0f} s",
             f"device {m['device']} ({m['gpu'] or 'no GPU'}), torch {m['torch']}, CUDA "
             f"{m['cuda']}, Python {m['python']}, {m['cpu_count']} CPU cores",
             f"--amp chose {m['amp_dtype']} ({m['amp_reason']})",
             f"measured {report['peak_dtype']} matmul peak: {report['matmul_peak_tflops']:.3g} "
             'TFLOP/s (MFU below is against it); compiled: torch.compile of every transformer '
             'block (regional)', '']
    cols = ['config', 'batch', 'GFLOP/img', 'eager ms', 'eager img/s', 'eager MFU',
            'compiled ms', 'compiled img/s', 'compiled MFU', 'compile s', 'graphs',
            'AdamW foreach ms', 'AdamW fused ms', 'CUDA peak GiB', 'losses']
    lines += [_row(cols), _row(['---'] * len(cols))]
    for e in report['configs']:
        name = osp.basename(e['config'])
        if e.get('error'):
            lines.append(_row([name] + ['-'] * (len(cols) - 2) + [f"error: {e['error']}"]))
            continue
        eager, comp, opt = e['eager'], e.get('compiled', {}), e['optimizer']
        mem = eager.get('cuda_peak_mib')
        loss = e['losses']
        lines.append(_row([
            name, str(e['batch_size']), f"{e['gflop_per_img']:.1f}", f"{eager['step_ms']:.1f}",
            f"{eager['img_s']:.4g}", f"{eager['mfu']:.1%}", _fmt(comp.get('step_ms'), '{:.1f}'),
            _fmt(comp.get('img_s'), '{:.4g}'), _fmt(comp.get('mfu'), '{:.1%}'),
            'skipped' if 'skipped' in comp else 'error' if 'error' in comp else
            _fmt(comp.get('compile_s'), '{:.0f}'), _fmt(comp.get('graphs'), '{}'),
            _fmt(opt.get('foreach_ms'), '{:.2f}'), _fmt(opt.get('fused_ms'), '{:.2f}'),
            _fmt(mem and mem / 1024, '{:.1f}'),
            f"{loss['count']} {'finite' if loss['finite'] else 'NOT FINITE'} "
            f"({loss['first']:.3g} -> {loss['last']:.3g})"]))
    for e in report['configs']:
        comp = e.get('compiled', {})
        if 'skipped' in comp or 'error' in comp:
            lines.append(f"compiled run of {osp.basename(e['config'])}: "
                         f"{comp.get('skipped') or comp['error']}")
    pipe = report.get('pipeline')
    if pipe:
        lines += ['', f"data pipeline on {pipe['workers']} CPU processes at once "
                  f"({pipe['images_per_worker']} images each; collation and transfer left out):",
                  _row(['config', 'CPU img/s', 'steps/s the CPU feeds', 'steps/s the GPU takes',
                        'verdict']), _row(['---'] * 5)]
        for path, p in pipe['configs'].items():
            verdict = 'CPU keeps up' if p['feeds_gpu'] else 'input-bound: the CPU is slower'
            lines.append(_row([osp.basename(path), f"{p['img_s']:.0f}", f"{p['steps_per_s']:.2f}",
                               f"{p['gpu_steps_per_s']:.2f}", verdict]))
    tests = report.get('tests')
    lines.append('')
    if tests:
        lines.append(f"CUDA tests ({tests['junit']}): {tests['passed']} passed, "
                     f"{tests['failed']} failed, {tests['errors']} errors, "
                     f"{tests['skipped']} skipped")
    else:
        lines.append('CUDA tests: not run (no --tests-junit)')
    lines += [f'problem: {p}' for p in report['problems']]
    return '\n'.join(lines) + '\n'


def write_report(report: Dict, out: str) -> None:
    """``gpu_check.json`` and ``gpu_check.txt`` under ``out``, with the verdict up to date
    (not OK before ``report['complete']``)."""
    report['problems'] = problems_of(report)
    report['ok'] = not report['problems'] and report.get('complete', False)
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, JSON_NAME), 'w') as f:
        json.dump(report, f, indent=2)
    with open(osp.join(out, TEXT_NAME), 'w') as f:
        f.write(text_report(report))


def main(argv: Optional[List[str]] = None,
         clock: Callable[[], float] = time.monotonic) -> Dict:
    """The check (``argv``: tools/gpu_check.py's arguments); ``clock`` in seconds keeps the
    budget."""
    args = parse_args(argv)
    start = clock()
    deadline = start + args.budget_s
    device = torch.device(args.device)
    if not MMLogger.check_instance_created('mim_plugins_benchmark'):
        MMLogger.get_instance('mim_plugins_benchmark', log_level='WARNING')
    dtype = step_amp_dtype(device)
    report: Dict = dict(schema=SCHEMA, ok=False, complete=False, problems=[],
                        machine=machine_info(device, dtype), peak_dtype=str(dtype)[6:],
                        options={k: v for k, v in vars(args).items() if k != 'configs'},
                        configs=[], pipeline=None,
                        tests=read_junit(args.tests_junit) if args.tests_junit else None)

    def save() -> None:
        report['elapsed_s'] = clock() - start
        write_report(report, args.out)

    print(f"--amp chose {report['machine']['amp_dtype']} ({report['machine']['amp_reason']})",
          flush=True)
    peak = matmul_peak(device, dtype, size=args.peak_size)
    report['matmul_peak_tflops'] = peak / 1e12
    print(f'{device} {str(dtype)[6:]} matmul peak: {peak / 1e12:.3g} TFLOP/s', flush=True)
    with tempfile.TemporaryDirectory() as root:
        for path in args.configs:
            try:
                entry = check_eager(path, root, args, peak)
            except Exception as exc:  # noqa: BLE001  (one broken config must not stop the rest)
                entry = dict(config=path, error=f'{type(exc).__name__}: {exc}'.splitlines()[0])
                _release(device)
            report['configs'].append(entry)
            print(f"{path}: {entry.get('eager', {}).get('img_s', 0):.3g} img/s eager "
                  f"{entry.get('error', '')}", flush=True)
            save()
        ran = [e for e in report['configs'] if 'eager' in e]
        if args.pipeline_images and ran:
            report['pipeline'] = dict(workers=args.pipeline_workers,
                                      images_per_worker=args.pipeline_images, configs={})
            try:
                rates = parallel_pipeline([e['config'] for e in ran], osp.join(root, 'pipeline'),
                                          args.pipeline_workers, args.pipeline_images)
                report['pipeline']['configs'] = {e['config']: _pipeline_entry(e, rates[e['config']])
                                                 for e in ran}
            except Exception as exc:  # noqa: BLE001  (the GPU part goes on)
                report['pipeline']['error'] = f'{type(exc).__name__}: {exc}'.splitlines()[0]
            save()
        slowest = 0.0
        for entry in ran:
            left = deadline - clock()
            need = 1.25 * slowest if slowest else FIRST_COMPILE_S
            if args.no_compile:
                entry['compiled'] = dict(skipped='--no-compile')
            elif left < need:
                entry['compiled'] = dict(skipped=f'time budget: {left:.0f} s left, a compiled '
                                         f'run takes ~{need:.0f} s')
            else:
                began = clock()
                try:
                    check_compiled(entry, root, args, peak)
                except Exception as exc:  # noqa: BLE001
                    entry['compiled'] = dict(error=f'{type(exc).__name__}: {exc}'.splitlines()[0])
                    _release(device)
                slowest = max(slowest, clock() - began)
            comp = entry['compiled']
            print(f"{entry['config']}: compiled " + (f"{comp['img_s']:.3g} img/s, compile "
                  f"{comp['compile_s']:.0f} s" if 'img_s' in comp else
                  comp.get('skipped') or comp['error']), flush=True)
            if report['pipeline'] and entry['config'] in report['pipeline']['configs'] \
                    and 'img_s' in entry.get('compiled', {}):
                report['pipeline']['configs'][entry['config']] = _pipeline_entry(
                    entry, report['pipeline']['configs'][entry['config']]['img_s'])
            save()
    report['complete'] = True
    save()
    print(text_report(report), flush=True)
    return report
