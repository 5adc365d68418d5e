"""What ``tools/train.py`` and ``tools/test.py`` share: flags, config loading, the launcher."""
import argparse
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction

from .errors import UserInputError

SCOPES = ('mmpretrain', 'mmseg')


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags both tools take, as OpenMMLab's own tools spell them."""
    parser.add_argument('config', help='config file (configs/ for mmpretrain, configs_seg/ for mmseg)')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: work_dirs/CONFIG_NAME)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (dist_train.sh / slurm_train.sh set it)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def load_config(args: argparse.Namespace) -> Config:
    """Read the config, apply ``--cfg-options`` and ``--work-dir``, and check its scope."""
    if not osp.isfile(args.config):
        raise UserInputError(f"Config file '{args.config}' does not exist. Fix: give the path of a "
                             "config under configs/ or configs_seg/.")
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise UserInputError(f"Config '{args.config}' has default_scope={scope!r}; these tools run "
                             f"{' or '.join(SCOPES)} configs. Fix: inherit an mmpretrain or mmseg "
                             "base config, or set default_scope in the config.")
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    return cfg


def setup_launcher(cfg: Config) -> None:
    """On a machine without CUDA, run distributed jobs with gloo and a CPU DDP wrapper.

    mmengine's own init calls ``torch.cuda.set_device``, which fails without a GPU, so the process
    group is created here from torchrun's environment; the runner then finds it ready.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(type='CPUDistributedDataParallel')
    if cfg.launcher == 'pytorch' and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')


def set_amp(cfg: Config, enabled: bool) -> None:
    """``--amp``: mixed precision through mmengine's AmpOptimWrapper (GPU only)."""
    if not enabled:
        return
    if not torch.cuda.is_available():
        raise UserInputError('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper runs on GPU/NPU '
                             'only) and none is visible. Fix: drop --amp on this machine.')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def checkpoint_arg(path: Optional[str], what: str) -> Optional[str]:
    """Fail early, and clearly, when a checkpoint given on the command line does not exist."""
    if path and path != 'auto' and not osp.isfile(path):
        raise UserInputError(f"{what} checkpoint '{path}' does not exist. Fix: pass the path of a "
                             ".pth file written by tools/train.py (work_dirs/.../epoch_N.pth).")
    return path
