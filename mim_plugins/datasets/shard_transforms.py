"""Decoding transforms for samples streamed from tar shards (``shards.ShardDataset``).

They replace the folder pipeline's file readers one for one and read the bytes the data set put
in the results instead of a path::

    LoadImageFromFile -> LoadImageFromShard        results['img_bytes'] -> results['img']
    LoadPartMap       -> LoadPartMapFromShard      results['part_bytes'] -> results['part_ids']

Everything after them (crops, flips, ``PackInputs``) is the stock pipeline. A failure names the
shard and the tar member, e.g. ``'data/shards/train-000003.tar' member '000042.png'``.
"""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ..utils.errors import UserInputError
from .part_maps import check_part_map

_REPACK = 'tools/dataset_converters/pack_shards.py'


class UnreadableShardImage(UserInputError):
    """An image member of a shard that cannot be decoded (truncated, or not an image).
    ``ShardDataset(skip_corrupt=True)`` (``tools/train.py --skip-corrupt-images``) skips it."""


def _where(results: dict, member: str) -> str:
    return f"'{results.get('shard', '?')}' member '{member}'"


@TRANSFORMS.register_module()
class LoadImageFromShard(BaseTransform):
    """Decode ``results['img_bytes']`` (popped) like mmcv's ``LoadImageFromFile`` decodes a file.

    Args:
        to_float32: return a float32 image instead of uint8.
        color_type: ``flag`` of ``mmcv.imfrombytes`` ('color', 'grayscale', 'unchanged').
        imdecode_backend: ``backend`` of ``mmcv.imfrombytes`` ('cv2', 'pillow', ...).

    Adds ``img`` (H, W, C) and ``img_shape``/``ori_shape`` (H, W). Bytes that do not decode raise
    ``UnreadableShardImage`` naming the shard and the member.
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color',
                 imdecode_backend: str = 'cv2'):
        self.to_float32 = to_float32
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend

    def transform(self, results: dict) -> dict:
        data = results.pop('img_bytes')
        reason = 'truncated, or not an image'
        try:
            img = mmcv.imfrombytes(data, flag=self.color_type, backend=self.imdecode_backend)
        except Exception as exc:  # noqa: BLE001  (every decoder failure is the same user error)
            img, reason = None, f'{type(exc).__name__}: {exc}'.replace('\n', ' ')
        if img is None or img.size == 0:
            raise UnreadableShardImage(
                f"Cannot decode the image in shard {_where(results, results['member'])} "
                f'({len(data)} bytes, {reason}). Fix: repack the shard from intact images '
                f'({_REPACK}), or train with --skip-corrupt-images to skip and count such '
                'images.')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(to_float32={self.to_float32}, '
                f'color_type={self.color_type!r}, imdecode_backend={self.imdecode_backend!r})')


@TRANSFORMS.register_module()
class LoadPartMapFromShard(BaseTransform):
    """Decode the sample's SemMAE part map (member ``<key>.part.png``, the 8-bit PNG of
    ``part_maps.py``) from ``results['part_bytes']`` (popped) into ``results['part_ids']``.

    Args:
        grid: side of the part map, the encoder's patch grid (``img_size // patch_size``).
        num_parts: ``K``; every id must be below it.

    Adds ``part_ids``: uint8 ``(grid, grid)``, the input of ``RandomResizedCropWithPartMap``. A
    sample packed without its map, or a mis-shaped or out-of-range map, raises
    ``UserInputError`` naming the shard and the member.
    """

    def __init__(self, grid: int = 14, num_parts: int = 7):
        if not 1 <= num_parts <= 256:
            raise ValueError(f'num_parts must lie in 1..256 (8-bit maps), got {num_parts}')
        self.grid = grid
        self.num_parts = num_parts

    def transform(self, results: dict) -> dict:
        member = f"{results['sample_key']}.part.png"
        data: Optional[bytes] = results.pop('part_bytes', None)
        fix = (f'Fix: pack the shards with {_REPACK} --part-root PART_ROOT (the folder of '
               f'{self.grid}x{self.grid} part maps that SemMAE stage 1 writes), or drop '
               'LoadPartMapFromShard from the pipeline.')
        if data is None:
            raise UserInputError(f"Shard '{results.get('shard', '?')}' has no part map "
                                 f"'{member}' for image '{results['member']}'. {fix}")
        try:
            part_ids = mmcv.imfrombytes(data, flag='unchanged', backend='pillow')
        except Exception:  # noqa: BLE001  (reported below as an unreadable map)
            part_ids = None
        results['part_ids'] = check_part_map(part_ids, self.grid, self.num_parts,
                                             f'The part map in shard {_where(results, member)}',
                                             fix, 'LoadPartMapFromShard')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(grid={self.grid}, num_parts={self.num_parts})'
