"""``tools/train.py``: train any mmpretrain (configs/) or mmseg (configs_seg/) config."""
import argparse
from typing import List, Optional

from mmengine.runner import Runner

from .checks import check_data_paths
from .common import add_common_args, checkpoint_arg, load_config, set_amp, setup_launcher


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
    return parser.parse_args(argv)


def build_runner(args: argparse.Namespace) -> Runner:
    """The mmengine Runner for ``args``: config merged with the flags, data paths checked."""
    cfg = load_config(args)
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
    setup_launcher(cfg)
    return Runner.from_cfg(cfg)


def main(argv: Optional[List[str]] = None) -> None:
    build_runner(parse_args(argv)).train()
