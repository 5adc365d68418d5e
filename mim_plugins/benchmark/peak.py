"""This machine's matrix-multiply peak, measured: the yardstick for a step's FLOP/s."""
import time
from typing import Any, Callable, Tuple

import torch


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> Tuple[float, Any]:
    """(seconds, result) of ``fn()``, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, size: int = 0,
                repeats: int = 5) -> float:
    """Best FLOP/s of ``size x size`` matrix products (``2·size³`` FLOPs each) in ``dtype``, on
    as many threads as torch uses. ``size`` 0 picks 2048 on CPU (large enough to reach the
    BLAS peak, ~0.1 s a product on two cores) and 8192 on GPU."""
    size = size or (8192 if device.type == 'cuda' else 2048)
    inner = 10 if device.type == 'cuda' else 1  # a GPU product is ~1 ms: time several
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)  # warm-up: BLAS / cuBLAS initialisation
    sync(device)
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        best = min(best, (time.perf_counter() - start) / inner)
    return 2 * size ** 3 / best
