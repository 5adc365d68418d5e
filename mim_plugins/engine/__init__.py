from ..utils.stack import seg_missing
from .safe_checkpoints import allow_mmengine_checkpoints, unsafe_globals
from . import hooks  # noqa: F401
from .cpu_ddp import CPUDistributedDataParallel
from .resumable_loop import ResumableEpochBasedTrainLoop
from .work_dir_lock import WorkDirLockedRunner, lock_work_dir

allow_mmengine_checkpoints()  # mmengine's own checkpoints load weights-only (safe_checkpoints.py)

if seg_missing() is None:  # the full install profile: mmseg imports
    from . import layer_decay  # noqa: F401  (layer-wise lr decay for mmseg segmentors)

__all__ = ['CPUDistributedDataParallel', 'ResumableEpochBasedTrainLoop',
           'WorkDirLockedRunner', 'allow_mmengine_checkpoints', 'lock_work_dir',
           'unsafe_globals']
