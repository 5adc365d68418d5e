"""``tools/train.py``: train any mmpretrain (configs/) or mmseg (configs_seg/) config."""
import argparse
from typing import List, Optional

from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..models.mask_ratio import check_backbone_mask_ratio
from ..models.sample_masks import check_mask_fields
from .checks import check_data_paths
from .common import (add_checkpoint_report, add_common_args, checkpoint_arg, load_config, set_amp,
                     setup_launcher)


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


# Stock type -> our drop-in subclass: exact mid-epoch resume, checkpoints that survive a crash.
_RESILIENT_TYPES = {'EpochBasedTrainLoop': 'ResumableEpochBasedTrainLoop',
                    'DefaultSampler': 'ResumableSampler',
                    'CheckpointHook': 'AtomicCheckpointHook'}


def _swap_type(node: Optional[dict]) -> None:
    if node and node.get('type') in _RESILIENT_TYPES:
        node.type = _RESILIENT_TYPES[node.type]


def make_resilient(cfg: Config, skip_corrupt_images: bool = False) -> None:
    """What tools/train.py adds to every config, all of it a no-op in a run without incidents:

    - ``ResumableEpochBasedTrainLoop`` + ``ResumableSampler`` for the stock epoch loop and
      sampler, and ``AtomicCheckpointHook`` for ``CheckpointHook``: ``--resume`` from a
      checkpoint taken mid-epoch continues exactly (data order, lr, λ, random state), and a
      crash or a full disk while saving leaves the previous checkpoint intact;
    - ``NaNGuardHook``, unless the config lists it or sets ``nan_guard = False``;
    - ``runner_type = 'WorkDirLockedRunner'`` unless the config names a runner: a second
      training in the same work dir stops before it writes anything there;
    - ``SkipCorruptImages`` around the training set, so an unreadable image (a 0-byte one
      too) stops training with one error naming it; with ``skip_corrupt_images`` it skips
      them instead (a streamed ``ShardDataset`` skips in its own stream:
      ``skip_corrupt=True``) and ``SkippedImagesHook`` counts them.
    """
    train_cfg = cfg.get('train_cfg')
    if train_cfg and 'type' not in train_cfg and train_cfg.get('by_epoch', False):
        train_cfg.pop('by_epoch')
        train_cfg.type = 'EpochBasedTrainLoop'
    _swap_type(train_cfg)
    loader = cfg.get('train_dataloader')
    if loader:
        _swap_type(loader.get('sampler'))
    _swap_type(cfg.get('default_hooks', {}).get('checkpoint'))
    hooks = list(cfg.get('custom_hooks') or [])
    types = {h.get('type') for h in hooks}
    if cfg.get('nan_guard', True) and 'NaNGuardHook' not in types:
        hooks.append(dict(type='NaNGuardHook'))
    cfg.setdefault('runner_type', 'WorkDirLockedRunner')
    dataset = loader.get('dataset') if loader else None
    if dataset and dataset.get('type') == 'ShardDataset':  # no indices for a wrapper to shift
        if skip_corrupt_images:
            dataset.skip_corrupt = True
    elif dataset and dataset.get('type') != 'SkipCorruptImages':
        # even without skipping: mmcv's error for a 0-byte image names no file; this one does
        loader.dataset = dict(type='SkipCorruptImages', dataset=dataset,
                              skip=skip_corrupt_images)
    elif dataset and skip_corrupt_images:
        dataset.skip = True
    if skip_corrupt_images and dataset and 'SkippedImagesHook' not in types:
        hooks.append(dict(type='SkippedImagesHook'))
    cfg.custom_hooks = hooks


def build_runner(args: argparse.Namespace, cfg: Optional[Config] = None) -> Runner:
    """The mmengine Runner for ``args``: config merged with the flags, data paths checked.
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
    make_resilient(cfg, args.skip_corrupt_images)
    add_checkpoint_report(cfg)
    setup_launcher(cfg)
    # as OpenMMLab's own tools/train.py: a config may name its runner
    runner = RUNNERS.build(cfg) if cfg.get('runner_type') else Runner.from_cfg(cfg)
    # stock mmpretrain algorithms declare nothing themselves: refuse a mask field they ignore,
    # or a stock MAEViT's mask ratio out of (0, 1)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    check_mask_fields(model)
    check_backbone_mask_ratio(model)
    return runner


def main(argv: Optional[List[str]] = None) -> None:
    build_runner(parse_args(argv)).train()
