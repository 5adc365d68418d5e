"""One training per work dir: ``WorkDirLockedRunner`` holds an exclusive ``flock`` on
``<work_dir>/.train.lock`` from before the runner writes anything there (mmengine's
``Runner.__init__`` creates the log folder and log file and dumps the config, all before any
hook runs) until the process ends. The kernel releases an ``flock`` when its process dies, so
a run killed with ``kill -9`` leaves no stale lock, only the file, which the next run reuses.
"""
import errno
import fcntl
import os
import os.path as osp
from typing import IO, Dict

import torch.distributed as dist
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..utils.errors import UserInputError

LOCK_NAME = '.train.lock'
# Locks this process holds, by work dir: a second runner of the same process (a resume in a
# notebook or a test) shares it; a second flock of the file would refuse this very process.
_HELD: Dict[str, IO] = {}


def lock_work_dir(work_dir: str) -> IO:
    """Create ``work_dir`` and lock it for this process: the open lock file, which holds the
    lock until it is closed or the process ends. Raises ``UserInputError`` naming the work dir,
    the process holding it and the fix when another process holds it."""
    key = osp.realpath(work_dir)
    held = _HELD.get(key)
    if held is not None and not held.closed:
        return held
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    handle = open(path, 'a+')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            handle.close()
            raise
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        who = f'process {holder}' if holder.isdigit() else 'another process'
        raise UserInputError(
            f"Work dir '{work_dir}' is in use by another training ({who} holds {path}); two "
            'runs there would mix their logs, config dump and checkpoints. Fix: wait for it to '
            'end, or give this run another folder with --work-dir.') from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'{os.getpid()}\n')
    handle.flush()
    _HELD[key] = handle
    return handle


def _main_process() -> bool:
    """Rank 0, or no distributed launch (before the runner sets up the process group, from
    the launchers' environment: torchrun, Slurm, Open MPI)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if key in os.environ:
            return os.environ[key] == '0'
    return True


@RUNNERS.register_module()
class WorkDirLockedRunner(Runner):
    """mmengine's ``Runner`` that first locks its work dir (:func:`lock_work_dir`, rank 0
    only), so a second training in the same work dir stops with one line before it writes
    anything. Select it with ``runner_type = 'WorkDirLockedRunner'`` in the config."""

    def __init__(self, *args, work_dir: str, **kwargs):
        self._work_dir_lock = lock_work_dir(osp.abspath(work_dir)) if _main_process() else None
        super().__init__(*args, work_dir=work_dir, **kwargs)
