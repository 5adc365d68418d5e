"""What ``tools/train.py`` and ``tools/test.py`` share: flags, config loading, the launcher."""
import argparse
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from ..utils.stack import require_seg
from .checks import check_weights_only
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
    try:
        cfg = Config.fromfile(args.config)
    except ModuleNotFoundError as exc:
        # mmengine: "mmsegmentation is not installed" for an `mmseg::` base, on the lite profile
        if str(exc).startswith(('mmseg ', 'mmsegmentation ')):
            require_seg(f"Config '{args.config}' (it inherits mmseg:: bases)")
        raise
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    scope = cfg.get('default_scope')
    if scope == 'mmseg':
        require_seg(f"Config '{args.config}' (default_scope 'mmseg')")
    if scope not in SCOPES:
        raise UserInputError(f"Config '{args.config}' has default_scope={scope!r}; these tools run "
                             f"{' or '.join(SCOPES)} configs. Fix: inherit an mmpretrain or mmseg "
                             "base config, or set default_scope in the config.")
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    return cfg


def add_checkpoint_report(cfg: Config) -> None:
    """Add ``CheckpointReportHook`` (a report of what each checkpoint the run loads filled in the
    model) unless the config lists it or sets ``checkpoint_report = False``."""
    hooks = list(cfg.get('custom_hooks') or [])
    if cfg.get('checkpoint_report', True) and all(
            h.get('type') != 'CheckpointReportHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='CheckpointReportHook')]


#: what tools/train.py and tools/test.py add to every config (WeightsOnlyCheckpointHook: our
#: checkpoints need no allowlist, stock ones load through restricted stand-ins; ResumeGuardHook:
#: a stored config is never executed)
SAFE_CHECKPOINT_HOOKS = ('WeightsOnlyCheckpointHook', 'ResumeGuardHook')


def add_hooks(cfg: Config, types) -> None:
    """Append ``dict(type=T)`` to ``custom_hooks`` for each of ``types`` the config lacks."""
    hooks = list(cfg.get('custom_hooks') or [])
    listed = {h.get('type') for h in hooks}
    cfg.custom_hooks = hooks + [dict(type=t) for t in types if t not in listed]


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


def amp_dtype() -> torch.dtype:
    """The autocast dtype of ``--amp`` on this machine's GPU: bf16 where the GPU computes it
    natively (Ampere and later; fp32's exponent range, so no loss scaling), else fp16 (older
    GPUs only emulate bf16, slowly)."""
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native else torch.float16


def set_amp(cfg: Config, enabled: bool) -> Optional[torch.dtype]:
    """``--amp``: mixed precision through mmengine's AmpOptimWrapper (GPU only), in the dtype
    :func:`amp_dtype` picks, which it logs and returns (None without ``--amp``). fp16 scales
    the loss dynamically; bf16 keeps a static scale of 1, i.e. none."""
    if not enabled:
        return None
    if not torch.cuda.is_available():
        raise UserInputError('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper runs on GPU/NPU '
                             'only) and none is visible. Fix: drop --amp on this machine.')
    dtype = amp_dtype()
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = str(dtype).replace('torch.', '')
    cfg.optim_wrapper.setdefault('loss_scale', 1.0 if dtype == torch.bfloat16 else 'dynamic')
    why = 'native' if dtype == torch.bfloat16 else 'no native'
    print_log(f'--amp: {cfg.optim_wrapper.dtype} autocast ({why} bf16 on this GPU), loss scale '
              f'{cfg.optim_wrapper.loss_scale}', logger='current')
    return dtype


def checkpoint_arg(path: Optional[str], what: str) -> Optional[str]:
    """Fail early, and clearly, when a checkpoint given on the command line does not exist."""
    if path and path != 'auto' and not osp.isfile(path):
        raise UserInputError(f"{what} checkpoint '{path}' does not exist. Fix: pass the path of a "
                             ".pth file written by tools/train.py (work_dirs/.../epoch_N.pth).")
    if path and path != 'auto':
        check_weights_only(path, f"{what} checkpoint '{path}'")
    return path
