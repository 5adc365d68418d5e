"""Peak memory of this process: resident set (CPU) and allocated CUDA memory."""
import resource

import torch

_STATUS = '/proc/self/status'


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux: writing 5 to ``/proc/self/clear_refs`` resets
    ``VmHWM``); False where that is not possible (the peak then covers the whole process)."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """The process's peak resident memory in MiB since the last :func:`reset_peak_rss`."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def reset_peak_cuda(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def peak_cuda_mib(device: torch.device) -> float:
    """Peak CUDA memory allocated by tensors since :func:`reset_peak_cuda` (0 on CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == 'cuda' else 0.0
