"""Fixed position tables (pure functions; the models and the converters share them)."""
import torch
from torch import Tensor


def sinusoid_table_1d(num_positions: int, dims: int) -> Tensor:
    """The 1-D sine-cosine table ``(1, num_positions, dims)`` float32: position ``n``, channel
    ``j`` is ``sin`` (even ``j``) or ``cos`` (odd ``j``) of ``n / 10000**(2*(j//2)/dims)``,
    computed in float64 as MAE-pytorch's ``get_sinusoid_encoding_table`` does with numpy."""
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    exponent = 2 * (torch.arange(dims) // 2).double() / dims
    angles = position / torch.pow(torch.tensor(10000., dtype=torch.float64), exponent)
    table = torch.where(torch.arange(dims) % 2 == 0, angles.sin(), angles.cos())
    return table.float().unsqueeze(0)
