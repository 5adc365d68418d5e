"""SemMAE stage 1's cost, three steps on one frozen ViT (``tools/benchmark.py parts``):

- ``train``: a training step of the learned part learner (``SemMAEPartLearner``: the frozen
  ViT under ``no_grad``, the part attention and decoder forward and backward, the optimizer
  update), as ``tools/train.py`` runs it on the learner's config;
- ``learned``: its inference, what ``tools/part_learning/write_learned_parts.py`` computes per
  batch (ViT, part maps, argmax, part ids to the CPU);
- ``kmeans``: the k-means baseline's inference, what ``tools/part_learning/learn_parts.py``
  computes per batch once its centroids are fitted (ViT features, nearest centroid).

Weights are random (the cost does not depend on them); image decoding and map writing are left
out of both inferences.
"""
import statistics
import tempfile
from functools import partial
from typing import Dict, List, Union

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from ..parts.learned_parts import learned_part_ids
from ..parts.part_learner import part_ids_of
from ..utils.errors import UserInputError
from .inference import InferenceStep
from .measure import _setup, alternating_times, load_config
from .memory import peak_cuda_mib, peak_rss_mib, reset_peak_cuda, reset_peak_rss
from .step import TrainStep, step_amp_dtype
from .synthetic import generated_batch, train_dataset_cfg

PHASES = {'train': 'learner training step', 'learned': 'learned inference',
          'kmeans': 'k-means inference'}
# distinct generated images in the training batch; copies fill the rest (the same work)
DISTINCT_IMAGES = 16


def learner_config(config: str, arch: Union[str, Dict[str, int]], img_size: int,
                   patch_size: int, num_parts: int) -> Config:
    """The part learner's ``config`` with its frozen ViT made ``arch`` / ``img_size`` /
    ``patch_size`` (random weights: no checkpoint), N = ``num_parts``, the decoder upsampling
    to the input resolution (``num_upsamples = log2(patch_size)``) and the train pipeline
    resizing to ``img_size``; every other choice (losses, decoder width, optimizer) is the
    config's."""
    cfg = load_config(config)
    if cfg.model.get('type') != 'SemMAEPartLearner':
        raise UserInputError(f"--config {config} trains {cfg.model.get('type')!r}, not a "
                             'SemMAEPartLearner. Fix: pass configs/semmae/semmae-parts_*.py.')
    if patch_size < 1 or patch_size & (patch_size - 1):
        raise UserInputError(f'--patch-size {patch_size}: the decoder doubles the patch grid '
                             'per block, so it must be a power of two. Fix: pass e.g. 16.')
    cfg.model.backbone.update(arch=arch, img_size=img_size, patch_size=patch_size,
                              init_cfg=None)
    cfg.model.num_parts = num_parts
    cfg.model.decoder = dict(cfg.model.get('decoder') or {},
                             num_upsamples=patch_size.bit_length() - 1)
    for transform in train_dataset_cfg(cfg).pipeline:
        if 'scale' in transform:
            scale = transform.scale
            transform.scale = img_size if isinstance(scale, int) else (img_size, img_size)
    return cfg


def images_for(cfg: Config, batch_size: int, device: torch.device) -> torch.Tensor:
    """(B, 3, H, W) normalised-like images at the ViT's input size, on ``device``."""
    size = cfg.model.backbone.img_size
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, 3, size, size, generator=gen).to(device)


def build_phase(name: str, cfg: Config, root: str,
                opts: dict) -> Union[TrainStep, InferenceStep]:
    """The step ``name`` (a key of ``PHASES``) of ``opts['batch_size']`` images on
    ``opts['device']`` (``opts['amp']``: autocast), building only the models it needs;
    ``root``: a folder for the generated training images."""
    device, size = torch.device(opts['device']), opts['batch_size']
    if name == 'train':
        batch = generated_batch(cfg, root, size, DISTINCT_IMAGES)
        return TrainStep(cfg, batch, device, amp=opts['amp'])
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    amp_dtype = step_amp_dtype(device) if opts['amp'] else None
    if name == 'learned':
        learner = MODELS.build(cfg.model).to(device).eval()
        fn = partial(learned_part_ids, learner, grid=learner.grid)
    elif name == 'kmeans':
        vit = MODELS.build(dict(cfg.model.backbone, out_type='featmap')).to(device)
        vit.eval()  # (mmpretrain's ViT.train() returns None: no chaining)
        vit.requires_grad_(False)
        gen = torch.Generator().manual_seed(0)
        centroids = F.normalize(torch.randn(cfg.model.num_parts, vit.embed_dims, generator=gen),
                                dim=1).to(device)
        fn = partial(part_ids_of, vit, centroids=centroids,
                     grid=tuple(vit.patch_embed.init_out_size))
    else:
        raise ValueError(f'phase must be one of {list(PHASES)}, got {name!r}')
    return InferenceStep(fn, images_for(cfg, size, device), device, amp_dtype)


def time_phases(spec: dict, opts: dict) -> List[Dict]:
    """Every phase built in this process, its FLOPs counted (the first warm-up step), then
    timed in ``opts['rounds']`` rounds of ``opts['steps']`` steps, the order rotating each
    round. ``spec``: :func:`learner_config`'s arguments. Per phase: step ms (median), ms per
    image, img/s, GFLOP per image, TFLOP/s and its fraction of ``opts['peak_flops']``."""
    _setup(opts)
    with tempfile.TemporaryDirectory() as root:
        cfg = learner_config(**spec)
        steps = [build_phase(name, cfg, root, opts) for name in PHASES]
        flops = [step.flops() for step in steps]
        for step in steps:
            step.time(opts['warmup'])
        times = alternating_times(steps, opts['rounds'], opts['steps'])
    results = []
    for name, step, count, seconds in zip(PHASES, steps, flops, times):
        median = statistics.median(seconds)
        results.append(dict(
            phase=name, what=PHASES[name], batch_size=step.batch_size, step_ms=median * 1e3,
            ms_per_img=median * 1e3 / step.batch_size, img_s=step.batch_size / median,
            gflop_per_img=count / 1e9 / step.batch_size, tflop_s=count / median / 1e12,
            peak_fraction=count / median / opts['peak_flops']))
    return results


def phase_memory(spec: dict, name: str, opts: dict) -> Dict:
    """Peak memory of the phase ``name`` (run alone in a fresh process, only its models
    resident): one warm-up step (optimizer state, allocator caches), then one step between
    peak resets. Returns dict(peak_rss_mib, cuda_peak_mib (None off CUDA))."""
    _setup(opts)
    with tempfile.TemporaryDirectory() as root:
        step = build_phase(name, learner_config(**spec), root, opts)
        step.time(1)
        reset_peak_rss()
        reset_peak_cuda(step.device)
        step.time(1)
        return dict(peak_rss_mib=peak_rss_mib(),
                    cuda_peak_mib=peak_cuda_mib(step.device) or None)
