"""SemMAE part maps: per-patch semantic part ids read from disk and kept aligned with the image.

On-disk format (written by SemMAE stage 1, part learning, or any tool that yields part ids):
one 8-bit single-channel PNG per image at::

    {part_root}/{image path relative to img_prefix, extension replaced by .png}

e.g. ``data/imagenet/train/n01440764/x.JPEG`` -> ``data/imagenet/part_maps/train/n01440764/x.png``
with ``img_prefix='data/imagenet/train'`` and ``part_root='data/imagenet/part_maps/train'``.
Pixel ``(i, j)`` holds the part id (``0..K-1``) of cell ``(i, j)`` of a ``grid x grid`` partition
of the WHOLE image (before any crop), which is also the encoder's patch grid: 14x14 for 224²
images with 16² patches, and for 112² images with 8² patches.

The pipeline only loads and geometrically follows the map; masks are drawn later, in the main
process, by ``MaskingDataPreprocessor`` (where the epoch, hence SemMAE's λ, is known)::

    LoadImageFromFile -> LoadPartMap -> RandomResizedCropWithPartMap -> RandomFlipWithPartMap
    -> PackInputs(algorithm_keys=['part_ids'])

``results['part_ids']`` is a ``(grid, grid)`` uint8 array; flattened, it is in raster order,
the order of the encoder's patch tokens.
"""
import os.path as osp
from typing import Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms import RandomFlip as _RandomFlip
from mmengine import fileio
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

from ..utils.errors import UserInputError


def part_map_path(part_root: str, img_prefix: str, img_path: str) -> str:
    """Where the part map of ``img_path`` lives (the layout of the module docstring)."""
    rel = osp.relpath(img_path, img_prefix)
    if rel == osp.pardir or rel.startswith(osp.pardir + osp.sep):
        raise UserInputError(
            f"Image '{img_path}' is not under img_prefix '{img_prefix}', so its part map cannot "
            "be located. Fix: set LoadPartMap's img_prefix to the image folder of the data set "
            "(data_root + data_prefix, e.g. 'data/imagenet/train').")
    return osp.join(part_root, osp.splitext(rel)[0] + '.png')


def save_part_map(path: str, part_ids: np.ndarray) -> None:
    """Write one ``(grid, grid)`` map of part ids (``0..255``) as an 8-bit PNG at ``path``."""
    part_ids = np.asarray(part_ids)
    if part_ids.ndim != 2 or part_ids.min() < 0 or part_ids.max() > 255:
        raise ValueError('a part map is a 2-D array of ids in 0..255, got shape '
                         f'{part_ids.shape} with ids {part_ids.min()}..{part_ids.max()}')
    mmcv.imwrite(part_ids.astype(np.uint8), path, auto_mkdir=True)


def check_part_map(part_ids: Optional[np.ndarray], grid: int, num_parts: int, what: str,
                   fix: str, owner: str) -> np.ndarray:
    """``part_ids`` (a decoded map, None if it did not decode) when it is uint8
    ``(grid, grid)`` with ids below ``num_parts``; else ``UserInputError`` starting with
    ``what`` (e.g. "Part map 'x.png' of image 'x.jpg'") and ending with ``fix``. ``owner`` is the
    transform whose ``num_parts`` the message suggests changing."""
    if part_ids is None or part_ids.dtype != np.uint8 or part_ids.shape != (grid, grid):
        got = 'unreadable' if part_ids is None else f'{part_ids.dtype} {part_ids.shape}'
        raise UserInputError(f"{what} is {got}, expected uint8 ({grid}, {grid}) (the encoder's "
                             f'patch grid). {fix}')
    if part_ids.max() >= num_parts:
        raise UserInputError(f'{what} holds part id {part_ids.max()}, but num_parts={num_parts} '
                             f'allows 0..{num_parts - 1}. {fix} If the maps are right, set '
                             f'{owner}.num_parts to the number of parts they use.')
    return part_ids


@TRANSFORMS.register_module()
class LoadPartMap(BaseTransform):
    """Read the part map of ``results['img_path']`` into ``results['part_ids']``.

    Args:
        part_root: folder of the part maps (mirrors the image folder below ``img_prefix``).
        img_prefix: the data set's image folder, ``data_root`` joined with ``data_prefix``.
        grid: side of the part map, the encoder's patch grid (``img_size // patch_size``).
        num_parts: ``K``; every id must be below it.

    Adds ``results['part_ids']``: uint8 ``(grid, grid)``. A missing, mis-shaped (not
    ``grid x grid``, or not single-channel 8-bit) or out-of-range map raises ``UserInputError``
    naming the image and the fix.
    """

    def __init__(self, part_root: str, img_prefix: str, grid: int = 14, num_parts: int = 7):
        if not 1 <= num_parts <= 256:
            raise ValueError(f'num_parts must lie in 1..256 (8-bit maps), got {num_parts}')
        self.part_root = part_root
        self.img_prefix = img_prefix
        self.grid = grid
        self.num_parts = num_parts

    def transform(self, results: dict) -> dict:
        img_path = results['img_path']
        path = part_map_path(self.part_root, self.img_prefix, img_path)
        fix = ('Fix: run SemMAE stage 1 (part learning) to write one '
               f'{self.grid}x{self.grid} 8-bit PNG of part ids 0..{self.num_parts - 1} per image '
               f'under {self.part_root}, or point LoadPartMap.part_root / img_prefix at them.')
        try:
            content = fileio.get(path)
        except FileNotFoundError:
            raise UserInputError(f"No part map for image '{img_path}': '{path}' does not "
                                 f'exist. {fix}') from None
        part_ids = mmcv.imfrombytes(content, flag='unchanged', backend='pillow')
        results['part_ids'] = check_part_map(part_ids, self.grid, self.num_parts,
                                             f"Part map '{path}' of image '{img_path}'", fix,
                                             'LoadPartMap')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(part_root={self.part_root!r}, '
                f'img_prefix={self.img_prefix!r}, grid={self.grid}, num_parts={self.num_parts})')


def crop_part_map(part_ids: np.ndarray, img_shape: Tuple[int, int],
                  box: Tuple[int, int, int, int], grid: Optional[int] = None) -> np.ndarray:
    """Part ids of a crop, on a ``grid x grid`` partition of the crop (default: same grid).

    ``part_ids`` ``(g, g)`` partitions the image of ``img_shape`` ``(H, W)``; ``box`` is
    ``(top, left, height, width)`` in pixels. Each output cell takes the id of the input cell
    under its centre (nearest neighbour: ids are labels, never interpolated).
    """
    grid = grid or part_ids.shape[0]
    top, left, height, width = box
    centres = (np.arange(grid) + 0.5) / grid
    rows = ((top + centres * height) * part_ids.shape[0] / img_shape[0]).astype(int)
    cols = ((left + centres * width) * part_ids.shape[1] / img_shape[1]).astype(int)
    rows = rows.clip(0, part_ids.shape[0] - 1)
    cols = cols.clip(0, part_ids.shape[1] - 1)
    return part_ids[np.ix_(rows, cols)]


@TRANSFORMS.register_module()
class RandomResizedCropWithPartMap(RandomResizedCrop):
    """mmpretrain's ``RandomResizedCrop`` that also crops ``results['part_ids']``.

    The stock transform does not expose its crop box, so the image crop is redone here with
    the same calls; the part map is cropped with :func:`crop_part_map` on the same box and keeps
    its grid (the output image is ``scale``, whose patch grid is the map's).
    """

    def transform(self, results: dict) -> dict:
        img = results['img']
        top, left, height, width = self.rand_crop_params(img)
        if 'part_ids' in results:
            results['part_ids'] = crop_part_map(results['part_ids'], img.shape[:2],
                                                (top, left, height, width))
        img = mmcv.imcrop(img, bboxes=np.array([left, top, left + width - 1, top + height - 1]))
        img = mmcv.imresize(img, tuple(self.scale[::-1]), interpolation=self.interpolation,
                            backend=self.backend)
        results['img'] = img
        results['img_shape'] = img.shape
        return results


@TRANSFORMS.register_module()
class RandomFlipWithPartMap(_RandomFlip):
    """mmcv's ``RandomFlip`` that flips ``results['part_ids']`` with the image."""

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        if 'part_ids' in results:
            results['part_ids'] = np.ascontiguousarray(
                mmcv.imflip(results['part_ids'], results['flip_direction']))
