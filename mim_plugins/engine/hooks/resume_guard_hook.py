"""``--resume`` that executes nothing from the checkpoint and names a file it cannot resume."""
import ast
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import find_latest_checkpoint

from ...utils.errors import UserInputError


def literal_gpu_ids(config: object) -> Optional[list]:
    """``gpu_ids`` of a stored config text, read without executing it: the value of a top-level
    ``gpu_ids = [...]`` of integer literals, or None."""
    try:
        tree = ast.parse(config if isinstance(config, str) else '')
    except (SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, 'id', None) for t in node.targets] == \
                ['gpu_ids']:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            if isinstance(value, (list, tuple)) and all(type(v) is int for v in value):
                return list(value)
    return None


@HOOKS.register_module()
class ResumeGuardHook(Hook):
    """Runs right after mmengine reads a checkpoint to load or resume (``after_load_checkpoint``):

    - ``meta['config']``: mmengine's ``Runner.resume`` hands it to ``Config.fromstring``, which
      *executes* it (Python), only to read ``gpu_ids``; it is replaced by a config holding just
      that literal (or dropped), read with :func:`literal_gpu_ids`;
    - resuming from a file that is no training checkpoint (no ``meta`` epoch / iter or no
      ``message_hub``: a converted or foreign file): one line naming it, instead of mmengine's
      ``KeyError``.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.get('meta')
        if isinstance(meta, dict) and 'config' in meta:
            gpu_ids = literal_gpu_ids(meta.pop('config'))
            if gpu_ids is not None:
                meta['config'] = f'gpu_ids = {gpu_ids!r}\n'
        # (mmengine keeps whether this load is a resume only in the runner's private flag)
        if not runner._resume:
            return
        missing = [key for key in ('meta', 'message_hub') if key not in checkpoint]
        if isinstance(meta, dict):
            missing += [f"meta['{key}']" for key in ('epoch', 'iter') if key not in meta]
        if missing:
            path = runner._load_from or find_latest_checkpoint(runner.work_dir)
            raise UserInputError(
                f"Cannot resume from '{path}': it is not a training checkpoint (no "
                f"{', '.join(missing)}). Fix: start a new run from its weights with --cfg-options "
                f'load_from={path} (no --resume), or resume from an epoch_N.pth / iter_N.pth '
                'that tools/train.py wrote.')
