"""The official SemMAE processed data (ucasligang/SemMAE, stage 2's input) in our layout.

The official stage 2 reads one ``.npy`` per image (``data/ImageNet_dataloader.py``), a 2-D
float array with one row per stored patch (``models_mae_setting3.py``, ``forward_encoder``)::

    [:, 0:7]    per part k, the number of stored patches in part k (the same in every row)
    [:, 7:14]   the patch's part, one-hot over the 7 part slots
    [:, 14]     the patch's index in the raster order of the source patch grid (e.g. 28x28 for
                224² images with 8² patches; the flip in ``data/transforms.py`` reads it so)
    [:, 15:]    the patch's pixels, p x p x 3 in (row, column, channel) order

Our stage 2 reads an image and a ``grid x grid`` PNG of part ids (``datasets/part_maps.py``).
``decode_official`` turns one array into both: the stored patches are placed on the rows and
columns of the source grid that they occupy (all of it, or a regular sub-lattice such as every
other row and column: 196 of 784), so patch ``(i, j)`` of the image and cell ``(i, j)`` of the
map are the same patch.
"""
from typing import Sequence, Tuple

import numpy as np

from ..utils.errors import UserInputError

NUM_SLOTS = 7
HEADER = 2 * NUM_SLOTS + 1  # counts, one-hot, index


def decode_official(array: np.ndarray, source_grid: int, what: str = 'array'
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """(L, 15 + 3 p²) official array (or (1, L, ...)) -> (pixels (g_h p, g_w p, 3) float, as
    stored; part ids (g_h, g_w) uint8). A patch with no part (an all-zero one-hot row) gets id
    7, one past the official slots. Raises ``UserInputError`` naming ``what`` for an array that
    is not in the layout (shape, one-hot, counts, indices)."""
    x = np.asarray(array)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    fix = ('Fix: pass files written by the official SemMAE stage 1 (one row per patch: 7 '
           'counts, 7 one-hot part channels, the patch index, the pixels), and --source-grid, '
           'the side of the patch grid the indices count in (28 for 224² images, 8² patches).')
    pixels = x.shape[1] - HEADER if x.ndim == 2 else -1
    p = int(round(np.sqrt(max(pixels, 0) / 3)))
    if x.ndim != 2 or pixels <= 0 or 3 * p * p != pixels:
        raise UserInputError(f'{what} has shape {array.shape}, not (patches, 15 + 3 p²). {fix}')
    onehot = x[:, NUM_SLOTS:2 * NUM_SLOTS]
    if not np.isin(onehot, (0, 1)).all() or (onehot.sum(1) > 1).any():
        raise UserInputError(f'{what}: columns 7-13 are not a one-hot part per patch. {fix}')
    if not np.allclose(x[:, :NUM_SLOTS], onehot.sum(0)):
        raise UserInputError(f'{what}: columns 0-6 are not the part counts of columns 7-13. '
                             f'{fix}')
    index = x[:, 2 * NUM_SLOTS]
    if (index != np.round(index)).any() or index.min() < 0 or \
            index.max() >= source_grid ** 2:
        raise UserInputError(f'{what}: column 14 holds {index.min()}..{index.max()}, not patch '
                             f'indices of a {source_grid}x{source_grid} grid. {fix}')
    rows_of, cols_of = np.divmod(index.astype(np.int64), source_grid)
    rows, cols = np.unique(rows_of), np.unique(cols_of)
    if len(rows) * len(cols) != len(x) or len(np.unique(index)) != len(x):
        raise UserInputError(f'{what}: its {len(x)} patches do not fill a lattice of rows and '
                             f'columns of the {source_grid}x{source_grid} grid. {fix}')
    r, c = np.searchsorted(rows, rows_of), np.searchsorted(cols, cols_of)
    ids = np.where(onehot.sum(1) > 0, onehot.argmax(1), NUM_SLOTS)
    part_ids = np.zeros((len(rows), len(cols)), np.uint8)
    part_ids[r, c] = ids
    image = np.zeros((len(rows), len(cols), p, p, 3), x.dtype)
    image[r, c] = x[:, HEADER:].reshape(-1, p, p, 3)
    return image.transpose(0, 2, 1, 3, 4).reshape(len(rows) * p, len(cols) * p, 3), part_ids


def to_uint8(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Stored pixels -> uint8 RGB: ``(x * std + mean) * 255`` for floats normalised with
    ``mean``/``std`` in [0, 1] units (mean 0, std 1: plain [0, 1] values); uint8 as is."""
    if pixels.dtype == np.uint8:
        return pixels
    rgb = (pixels * np.asarray(std) + np.asarray(mean)) * 255
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)
