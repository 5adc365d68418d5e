from . import checkpoint_loader  # noqa: F401  (replaces mmengine's local checkpoint loader)
from . import hooks  # noqa: F401
from .cpu_ddp import CPUDistributedDataParallel

__all__ = ['CPUDistributedDataParallel']
