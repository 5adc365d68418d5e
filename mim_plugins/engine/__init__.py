from . import checkpoint_loader  # noqa: F401  (replaces mmengine's local checkpoint loader)
from . import checkpoint_report  # noqa: F401  (reports mismatching keys on every load)
from . import hooks  # noqa: F401
from . import layer_decay  # noqa: F401  (layer-wise lr decay for mmseg segmentors)
from .cpu_ddp import CPUDistributedDataParallel
from .resumable_loop import ResumableEpochBasedTrainLoop

__all__ = ['CPUDistributedDataParallel', 'ResumableEpochBasedTrainLoop']
