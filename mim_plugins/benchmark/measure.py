"""Measurements of one config, and of ours against the stock implementation side by side."""
import os.path as osp
import statistics
import tempfile
from typing import Dict, List, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.hub import get_config
from mmengine.logging import MMLogger

from ..utils.errors import UserInputError
from .memory import peak_cuda_mib, peak_rss_mib, reset_peak_cuda, reset_peak_rss
from .pipeline import pipeline_throughput
from .step import Timed, TrainStep
from .synthetic import generated_batch


def load_config(path: str) -> Config:
    """A config file, or a package config such as ``mmpretrain::mae/mae_vit-base-...py``,
    optionally followed by ``@key=value,key=value`` overrides (``--cfg-options`` syntax, e.g.
    ``configs/mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py@model.neck.decoder_depth=1``)."""
    path, _, overrides = path.partition('@')
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    if overrides:
        options = {}
        for item in overrides.split(','):
            key, sep, value = item.partition('=')
            if not sep:
                raise UserInputError(f'benchmark config {path!r}: override {item!r} is not '
                                     'key=value. Fix: write CONFIG@key=value,key=value.')
            options[key] = DictAction._parse_iterable(value)
        cfg.merge_from_dict(options)
    return cfg


def _setup(opts: dict) -> None:
    """Threads, seed, and a logger that keeps mmengine's per-parameter info out of the table."""
    torch.set_num_threads(opts['threads'])
    torch.manual_seed(0)
    if not MMLogger.check_instance_created('mim_plugins_benchmark'):  # the newest is current
        MMLogger.get_instance('mim_plugins_benchmark', log_level='WARNING')


def build_step(path: str, root: str, opts: dict) -> TrainStep:
    """The config's ``TrainStep`` on a generated batch of ``opts['batch_size']`` (of which
    ``opts['distinct_images']`` distinct, if given), on ``opts['device']``, ``opts['amp']``."""
    cfg = load_config(path)
    batch = generated_batch(cfg, osp.join(root, 'step'), opts['batch_size'],
                            opts.get('distinct_images'))
    return TrainStep(cfg, batch, torch.device(opts['device']), amp=opts['amp'])


def measure_config(path: str, opts: dict) -> Dict:
    """Step time (median of ``steps`` after ``warmup``), img/s, FLOPs per step and FLOP/s (as a
    fraction of ``opts['peak_flops']``), peak RSS and CUDA memory over the timed steps, the
    time of the optimizer update alone (median of ``steps``; inside the step time, outside the
    FLOP count), and the pipeline's img/s per worker (``pipeline_images`` > 0)."""
    _setup(opts)
    with tempfile.TemporaryDirectory() as root:
        step = build_step(path, root, opts)
        flops = step.flops()  # eager, and the first warm-up step
        if opts['compile']:
            step.compile()
        step.time(opts['warmup'])
        reset_peak_rss()
        reset_peak_cuda(step.device)
        seconds = statistics.median(step.time(opts['steps']))
        peak_rss = peak_rss_mib()  # (before the optimizer alone allocates anything)
        optimizer_s = statistics.median(step.optimizer_time(opts['steps']))
        result = dict(
            config=path, batch_size=step.batch_size, device=opts['device'], amp=opts['amp'],
            compile=opts['compile'], step_ms=seconds * 1e3, img_s=step.batch_size / seconds,
            gflop_per_step=flops / 1e9, gflop_per_img=flops / 1e9 / step.batch_size,
            tflop_s=flops / seconds / 1e12, peak_fraction=flops / seconds / opts['peak_flops'],
            optimizer_ms=optimizer_s * 1e3, peak_rss_mib=peak_rss,
            cuda_peak_mib=peak_cuda_mib(step.device) or None)
        if opts['pipeline_images']:
            result['pipeline_img_s'] = pipeline_throughput(
                load_config(path), osp.join(root, 'pipeline'), opts['pipeline_images'])
    return result


def alternating_times(steps: Sequence[Timed], rounds: int, count: int) -> List[List[float]]:
    """Seconds of ``count`` calls of each of ``steps`` per round, over ``rounds`` rounds whose
    order rotates by one each round (round ``r`` starts with ``steps[r % len(steps)]``), so
    that neither a change in the machine's load nor going first favours one of them: one list
    per step, in the order of ``steps``."""
    times: List[List[float]] = [[] for _ in steps]
    for r in range(rounds):
        for k in range(len(steps)):
            i = (r + k) % len(steps)
            times[i] += steps[i].time(count)
    return times


def compare(ours: str, stock: str, opts: dict) -> Dict:
    """Both steps built in this process and timed in ``rounds`` rounds of ``steps`` steps each,
    ours first in even rounds and the stock one first in odd ones, so that neither a change in
    the machine's load nor going first favours one of them; ``ratio`` is ours' img/s over the
    stock one's (> 1: ours is faster). The FLOPs per image of each (the first warm-up step)
    tell whether a ratio comes from the implementation or from a different amount of work."""
    _setup(opts)
    with tempfile.TemporaryDirectory() as root:
        steps = [build_step(p, osp.join(root, str(i)), opts) for i, p in enumerate((ours, stock))]
        flops = [step.flops() for step in steps]
        for step in steps:
            if opts['compile']:
                step.compile()
            step.time(opts['warmup'])
        times = alternating_times(steps, opts['rounds'], opts['steps'])
    ours_s, stock_s = (statistics.median(t) for t in times)
    size = steps[0].batch_size
    return dict(ours=ours, stock=stock, ours_img_s=size / ours_s, stock_img_s=size / stock_s,
                ratio=stock_s / ours_s, ours_gflop_per_img=flops[0] / 1e9 / size,
                stock_gflop_per_img=flops[1] / 1e9 / size)
