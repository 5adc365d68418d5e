"""``tools/train.py``: train any mmpretrain (configs/) or mmseg (configs_seg/) config."""
import argparse
from typing import List, Optional

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checks import check_data_paths
from .common import add_common_args, checkpoint_arg, load_config, set_amp, setup_launcher
from .errors import UserInputError


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a mim_plugins / mmpretrain / mmseg model')
    add_common_args(parser)
    parser.add_argument('--resume', nargs='?', const='auto', metavar='CHECKPOINT',
                        help='resume from CHECKPOINT, or from the latest one in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--no-validate', action='store_true', help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size (auto_scale_lr.base_batch_size)')
    parser.add_argument('--no-pin-memory', action='store_true', help='dataloaders without pin_memory')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='dataloaders without persistent workers')
    parser.add_argument('--skip-corrupt-images', action='store_true',
                        help='replace training images that cannot be decoded by the next '
                        'readable one, and log how many per epoch (default: stop and name it)')
    return parser.parse_args(argv)


def guard_images(cfg: Config, skip: bool) -> None:
    """Wrap the training set in ``SkipCorruptImages``: an unreadable image (a 0-byte one too)
    stops training with one error naming it, where mmcv's own error names no file; with ``skip``
    (``--skip-corrupt-images``) it is replaced by the next readable one instead, and
    ``SkippedImagesHook`` logs how many each epoch skipped. A streamed ``ShardDataset`` names
    and skips in its own stream (``skip_corrupt=True``): it has no indices to shift.
    Segmentation configs keep their data set (the wrapper is an mmpretrain one)."""
    loader = cfg.get('train_dataloader')
    if not loader:
        return
    if cfg.get('default_scope') != 'mmpretrain':  # the wrapper is an mmpretrain data set
        if skip:
            raise UserInputError('--skip-corrupt-images works with the mmpretrain configs '
                                 '(configs/), not with segmentation ones. Fix: drop the flag and '
                                 'remove the unreadable image named in the error.')
        return
    hooks = list(cfg.get('custom_hooks') or [])
    types = {h.get('type') for h in hooks}
    dataset = loader.get('dataset')
    if dataset.get('type') == 'ShardDataset':
        if skip:
            dataset.skip_corrupt = True
    elif dataset.get('type') != 'SkipCorruptImages':
        loader.dataset = dict(type='SkipCorruptImages', dataset=dataset, skip=skip)
    elif skip:
        dataset.skip = True
    if skip and 'SkippedImagesHook' not in types:
        cfg.custom_hooks = hooks + [dict(type='SkippedImagesHook')]


def build_runner(args: argparse.Namespace, cfg: Optional[Config] = None) -> Runner:
    """The mmengine Runner for ``args``: the config merged with the flags, data paths checked,
    then ``Runner.from_cfg`` as ``mim train`` and OpenMMLab's own tools call it. Everything a
    run needs beyond the flags (resilient loop and sampler, atomic checkpoints, NaN guard,
    checkpoint report, mask-field check) is in the config (configs/_base_/mim_runtime.py).
    ``cfg``: the config ``load_config(args)`` returned, edited by the caller in between (the
    tests shrink it to tiny data); None: loaded here."""
    cfg = load_config(args) if cfg is None else cfg
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    set_amp(cfg, args.amp)
    if checkpoint_arg(args.resume, '--resume'):
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            if args.no_pin_memory:
                cfg[key].pin_memory = False
            if args.no_persistent_workers:
                cfg[key].persistent_workers = False
    check_data_paths(cfg, ('train_dataloader',) + (() if args.no_validate else ('val_dataloader',)))
    guard_images(cfg, args.skip_corrupt_images)
    setup_launcher(cfg)
    # as OpenMMLab's own tools/train.py: the config names its runner (configs/_base_/
    # mim_runtime.py: WorkDirLockedRunner)
    return RUNNERS.build(cfg) if cfg.get('runner_type') else Runner.from_cfg(cfg)


def main(argv: Optional[List[str]] = None) -> None:
    build_runner(parse_args(argv)).train()
