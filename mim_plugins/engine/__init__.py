from ..utils.stack import seg_missing
from .safe_checkpoints import read_checkpoint, stock_checkpoint_globals, unsafe_globals
from . import hooks  # noqa: F401
from .cpu_ddp import CPUDistributedDataParallel
from .resumable_loop import ResumableEpochBasedTrainLoop
from .work_dir_lock import WorkDirLockedRunner, lock_work_dir

if seg_missing() is None:  # an mmseg that imports (either install profile)
    from . import layer_decay  # noqa: F401  (layer-wise lr decay for mmseg segmentors)

__all__ = ['CPUDistributedDataParallel', 'ResumableEpochBasedTrainLoop', 'WorkDirLockedRunner',
           'lock_work_dir', 'read_checkpoint', 'stock_checkpoint_globals', 'unsafe_globals']
