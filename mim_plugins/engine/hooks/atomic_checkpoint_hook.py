"""mmengine's CheckpointHook, made safe to kill and to run out of disk, and exactly resumable."""
import errno
import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ...utils.errors import UserInputError
from ..checkpoint_rng import record_rng_states

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _replace_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old or the new file, never half."""
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose regular checkpoints survive a crash mid-save.

    The stock hook deletes the checkpoint beyond ``max_keep_ckpts`` *before* writing the new one,
    straight into its final name: a full disk or a kill during the write leaves a truncated file
    and, with ``max_keep_ckpts=1``, no checkpoint at all. Here the new checkpoint is written to
    ``NAME.tmp`` and renamed (``os.replace``, atomic on a local file system) once complete; old
    ones are deleted and ``last_checkpoint`` is updated only after that. A full disk ends the run
    with a ``UserInputError`` naming the directory and the checkpoint that is still intact.

    Each checkpoint also records every rank's random-generator state (message-hub key
    ``rng_states``) for ``ResumableEpochBasedTrainLoop``. Non-local backends (``backend_args``
    pointing at remote storage) and ``save_best`` checkpoints keep the stock behaviour.
    """

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        record_rng_states(runner.message_hub)
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        hub = runner.message_hub
        previous = hub.get_info('last_ckpt')
        filename = self.filename_tmpl.format(step)
        path = self.file_backend.join_path(self.out_dir, filename)
        keep = list(getattr(self, 'keep_ckpt_ids', ()))
        # The checkpoint's own message hub must already name it (as the stock hook does), so a
        # resumed run knows which files it keeps; the files themselves change after the write.
        if self.max_keep_ckpts > 0:
            if not keep or keep[-1] != step:
                keep.append(step)
            hub.update_info('keep_ckpt_ids', keep[-self.max_keep_ckpts:])
        hub.update_info('last_ckpt', path)
        try:
            runner.save_checkpoint(self.out_dir, f'{filename}.tmp', self.file_client_args,
                                   save_optimizer=self.save_optimizer,
                                   save_param_scheduler=self.save_param_scheduler, meta=meta,
                                   by_epoch=self.by_epoch, backend_args=self.backend_args,
                                   **self.args)
            if is_main_process():
                os.replace(f'{path}.tmp', path)
                _replace_text(osp.join(runner.work_dir, 'last_checkpoint'), path)
        except OSError as exc:
            self._undo(runner, path, previous)
            if exc.errno in _DISK_FULL:
                kept = (f"the previous checkpoint '{previous}' is intact" if previous
                        else 'no earlier checkpoint exists')
                raise UserInputError(
                    f"No space left on the device while saving checkpoint '{path}' "
                    f'(iteration {runner.iter + 1}); {kept}. Fix: free '
                    f"space in '{self.out_dir}' (or lower max_keep_ckpts), or train into "
                    'another disk with --work-dir, then continue with --resume.') from exc
            raise
        self.last_ckpt = path
        if self.max_keep_ckpts > 0:
            self._drop_old(keep)

    def _drop_old(self, keep: list) -> None:
        """Delete the checkpoints beyond ``max_keep_ckpts``, now that the new one is complete."""
        while len(keep) > self.max_keep_ckpts:
            old = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(keep.pop(0)))
            if is_main_process() and self.file_backend.isfile(old):
                self.file_backend.remove(old)
        self.keep_ckpt_ids.clear()
        self.keep_ckpt_ids.extend(keep)

    def _undo(self, runner, path: str, previous) -> None:
        """After a failed write: no partial file, and the message hub names the previous one."""
        if self.max_keep_ckpts > 0:
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        runner.message_hub.update_info('last_ckpt', previous)
        for leftover in (f'{path}.tmp', osp.join(runner.work_dir, 'last_checkpoint.tmp')):
            if is_main_process() and osp.exists(leftover):
                os.remove(leftover)
