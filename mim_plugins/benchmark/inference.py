"""One inference step (a function of a fixed image batch), timed and counted as a training
step (:class:`~.step.TrainStep`) is."""
from contextlib import nullcontext
from typing import Any, Callable, List, Optional

import torch
from torch.utils.flop_counter import FlopCounterMode

from .peak import timed


class InferenceStep:
    """``fn(images)`` on one batch of normalised images (B, 3, H, W) already on ``device``.

    Args:
        fn: the step, e.g. images -> (B, h, w) part ids on the CPU.
        images: (B, 3, H, W) float.
        device: where ``fn`` runs (synchronised around each timed call).
        amp_dtype: autocast dtype of the call (None: none).
    """

    def __init__(self, fn: Callable[[torch.Tensor], Any], images: torch.Tensor,
                 device: torch.device, amp_dtype: Optional[torch.dtype] = None):
        self.fn, self.images, self.device, self.amp_dtype = fn, images, device, amp_dtype
        self.batch_size = images.shape[0]

    def __call__(self) -> Any:
        with torch.autocast(self.device.type, self.amp_dtype) if self.amp_dtype \
                else nullcontext():
            return self.fn(self.images)

    def flops(self) -> int:
        """FLOPs of one call, counted by ``torch.utils.flop_counter``."""
        with FlopCounterMode(display=False) as counter:
            self()
        return counter.get_total_flops()

    def time(self, steps: int) -> List[float]:
        """Seconds of each of ``steps`` calls."""
        return [timed(self, self.device)[0] for _ in range(steps)]
