"""Resizing a BEiT relative position bias table, for SciPy >= 1.14.

When a BEiT checkpoint loads into a ``BEiTViT`` of another input size (pretrained at 224x224,
segmenting 640x640 crops), mmpretrain resizes each block's relative position bias table with
``scipy.interpolate.interp2d``, which SciPy 1.14 removed: the load fails with
``NotImplementedError``. :func:`resize_relative_position_bias_table` is the same computation
on ``RectBivariateSpline`` (the bicubic interpolating spline interp2d fitted to gridded data);
``ResizableBEiTViT`` (resizable_beit.py) loads with it. mmpretrain itself is left as it is.
"""
import math

import numpy as np
import torch
from torch import Tensor


def stretched_offsets(src_size: int, dst_size: int) -> np.ndarray:
    """Positions for the ``src_size`` offsets of a source table (``src_size`` odd, offsets
    ``-(n)..n``) in the target's offset range ``-(dst_size // 2)..dst_size // 2``: offsets 0 and
    +-1 stay, the gaps grow geometrically, ``q ** i``, with ``q`` chosen so that the last offset
    lands on ``dst_size // 2`` (BEiT's scheme: near offsets keep their bias, far ones spread)."""
    n = src_size // 2
    low, high = 1.01, 1.5
    while high - low > 1e-6:  # sum_{i < n} q**i = dst_size // 2, by bisection
        q = (low + high) / 2
        if (1 - q ** n) / (1 - q) > dst_size // 2:
            high = q
        else:
            low = q
    positive = np.cumsum([q ** i for i in range(n)])
    return np.concatenate([-positive[::-1], [0.], positive])


def resize_relative_position_bias_table(src_shape: int, dst_shape: int, table: Tensor,
                                        num_head: int) -> Tensor:
    """mmpretrain's signature: ``table`` ``(src_shape ** 2, num_head)``, one row per (row
    offset, column offset) in row-major order, becomes ``(dst_shape ** 2, num_head)``: each
    head's square of biases is fitted with a bicubic spline at :func:`stretched_offsets` and read
    at the target's integer offsets."""
    from scipy.interpolate import RectBivariateSpline
    src = stretched_offsets(src_shape, dst_shape)
    half = dst_shape // 2
    dst = np.arange(-half, half + 0.1, 1.0)
    heads = []
    for i in range(num_head):
        square = table[:, i].reshape(src_shape, src_shape).float().cpu().numpy()
        spline = RectBivariateSpline(src, src, square, kx=3, ky=3, s=0)
        heads.append(torch.from_numpy(spline(dst, dst)).reshape(-1, 1))
    return torch.cat(heads, dim=1).to(table.device, table.dtype)


def resize_beit_table(table: Tensor, rows: int) -> Tensor:
    """A BEiT attention block's table ``(S ** 2 + 3, num_head)`` (the ``S x S`` offsets, then
    3 rows for the cls token) for a block whose table has ``rows = D ** 2 + 3`` rows: the offsets
    resized by :func:`resize_relative_position_bias_table`, the cls rows kept as they are."""
    src, dst = math.isqrt(table.shape[0] - 3), math.isqrt(rows - 3)
    offsets = resize_relative_position_bias_table(src, dst, table[:-3], table.shape[1])
    return torch.cat([offsets, table[-3:]])
