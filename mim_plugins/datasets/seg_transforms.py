"""Transforms on segmentation label maps, registered in mmseg's TRANSFORMS.

* ``CheckSegLabels``: one clear error for a label PNG that does not fit its image or holds a
  class id the data set does not have (mmseg would fail deep inside the loss, or count nothing
  for that pixel and report a wrong mIoU).
* ``RandomResizedCropWithSegMap``: mmpretrain's ``RandomResizedCrop`` applied to the label maps
  too (nearest), the training crop of the Leopart / SemanticMIM VOC linear probe.
* ``ResizeSegMap``: resize the label map alone (Leopart trains on 100x100 masks of 448x448
  images, and evaluates on 448x448 masks).
"""
from typing import Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import RandomResizedCrop
from mmseg.registry import TRANSFORMS

from ..utils.errors import UserInputError


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Check ``results['gt_seg_map']`` right after mmseg's ``LoadAnnotations``.

    The map must be one 2-D class-id map of the image's size (``ori_shape``, the image as read,
    so it may come after a ``Resize`` of the image) with ids in ``0..num_classes-1`` or
    ``ignore_index``. Raises ``UserInputError`` naming the PNG, the problem and the fix.

    Args:
        num_classes: classes of the data set (ADE20K 150, VOC 21).
        ignore_index: the id that is not evaluated (mmseg: 255).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        label, path = results['gt_seg_map'], results.get('seg_map_path', '?')
        image = f"image '{results.get('img_path', '?')}'"
        if label.ndim != 2:
            raise UserInputError(
                f"Label map '{path}' has shape {label.shape}, not one class id per pixel (an RGB "
                'colour rendering?). Fix: save the label map as a single-channel 8-bit or palette '
                'PNG whose pixel values are class ids.')
        height, width = results['ori_shape'][:2]
        if label.shape != (height, width):
            raise UserInputError(
                f"Label map '{path}' is {label.shape[1]}x{label.shape[0]} (WxH) but its {image} "
                f'is {width}x{height}. Fix: write the label map at the size of its image (and '
                'check that both files belong to the same sample).')
        ids = np.unique(label)
        bad = ids[(ids >= self.num_classes) & (ids != self.ignore_index)]
        if bad.size:
            reduced = bool(results.get('reduce_zero_label'))
            # reduce_zero_label stored raw id k as k - 1: report what the PNG holds
            raw = [int(v) + reduced for v in bad]
            valid = (f'0 (unlabelled) and 1..{self.num_classes}' if reduced
                     else f'0..{self.num_classes - 1}')
            raise UserInputError(
                f"Label map '{path}' holds class id(s) {raw}, which the data set does not have "
                f'(valid pixel values: {valid}, and {self.ignore_index} = ignored). Fix: correct '
                'the label map, or give the data set its real classes (metainfo) and the heads '
                'the same num_classes.')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')


@TRANSFORMS.register_module()
class RandomResizedCropWithSegMap(RandomResizedCrop):
    """mmpretrain's ``RandomResizedCrop`` (same arguments) that crops every map in
    ``results['seg_fields']`` with the image's box and resizes it to ``scale`` with nearest
    interpolation. Sets ``img_shape`` to ``(h, w)`` as mmseg expects."""

    def transform(self, results: dict) -> dict:
        img = results['img']
        top, left, height, width = self.rand_crop_params(img)
        box = np.array([left, top, left + width - 1, top + height - 1])
        size = tuple(self.scale[::-1])  # mmcv takes (w, h)
        results['img'] = mmcv.imresize(mmcv.imcrop(img, box), size,
                                       interpolation=self.interpolation, backend=self.backend)
        for key in results.get('seg_fields', []):
            results[key] = mmcv.imresize(mmcv.imcrop(results[key], box), size,
                                         interpolation='nearest', backend=self.backend)
        results['img_shape'] = results['img'].shape[:2]
        return results


@TRANSFORMS.register_module()
class ResizeSegMap(BaseTransform):
    """Resize ``results['gt_seg_map']`` alone to ``size`` ``(h, w)``, nearest.

    Args:
        size: ``(h, w)`` of the label map, e.g. Leopart's 100x100 training masks (the decode
            head's loss resizes its logits to the label map, so the loss is taken at this size).
        as_ori_shape: also record ``size`` as ``ori_shape``: the segmentor then resizes its
            prediction to ``size`` and the metric compares at ``size`` (Leopart evaluates
            448x448 masks, not the images' own sizes).
    """

    def __init__(self, size: Sequence[int], as_ori_shape: bool = False) -> None:
        self.size = tuple(size)
        self.as_ori_shape = as_ori_shape

    def transform(self, results: dict) -> dict:
        results['gt_seg_map'] = mmcv.imresize(results['gt_seg_map'], self.size[::-1],
                                              interpolation='nearest')
        if self.as_ori_shape:
            results['ori_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, as_ori_shape={self.as_ori_shape})'
