"""Stop training at the first NaN or infinite loss, naming the checkpoint to go back to."""
import math
from typing import Optional

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...utils.errors import UserInputError


class NonFiniteLossError(UserInputError):
    """The loss became NaN or infinite; the message names the iteration and the checkpoint."""


@HOOKS.register_module()
class NaNGuardHook(Hook):
    """After every ``interval``-th training iteration, check that every loss in the model's
    outputs (keys containing ``loss``) is finite; if not, raise ``NonFiniteLossError``:
    "loss became NaN at iteration N; last good checkpoint: PATH" with the fix.

    It runs after the logger (so the bad iteration is in the log) and before the checkpoint
    hook (so the diverged weights are never saved). In distributed training the verdict is
    all-reduced, so every rank stops at the same iteration instead of the others hanging.
    Every config lists it through ``configs/_base_/mim_runtime.py``.
    """

    priority = 'LOW'  # after LoggerHook (BELOW_NORMAL), before CheckpointHook (VERY_LOW)

    def __init__(self, interval: int = 1):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        losses = {k: v for k, v in outputs.items() if 'loss' in k}
        bad = [k for k, v in losses.items() if not _finite(v)]
        device = next((v.device for v in losses.values() if isinstance(v, torch.Tensor)), 'cpu')
        flag = torch.tensor(float(bool(bad)), device=device)
        all_reduce(flag)
        if flag.item() == 0:
            return
        what = 'NaN' if any(_is_nan(losses[k]) for k in bad) else 'infinite' if bad \
            else 'NaN or infinite on another rank'
        last = runner.message_hub.get_info('last_ckpt')
        where = f'last good checkpoint: {last}' if last else 'no checkpoint was saved before it'
        resume = f'resume from it (--resume {last})' if last else 'train again'
        raise NonFiniteLossError(
            f'loss became {what} at iteration {runner.iter + 1}; {where}. '
            + (f"Non-finite: {', '.join(bad)}. " if bad else '')
            + 'Training stopped before saving the diverged weights. Fix: clip gradients '
            f'(--cfg-options optim_wrapper.clip_grad.max_norm=1.0) and {resume}, or lower the '
            'learning rate and train again (a resumed run keeps the saved lr schedule); a broken '
            'image or label can do this too.')


def _finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value.detach()).all())
    return math.isfinite(float(value))


def _is_nan(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isnan(value.detach()).any())
    return math.isnan(float(value))
