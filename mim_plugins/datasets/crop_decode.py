"""Crop-aware decoding: the load + RandomResizedCrop pair of the pretraining pipelines in one pass.

The stock pipeline decodes the whole file, copies the crop out, resizes it through PIL and packs
it. Here the crop box is drawn first, in original-image coordinates and with the stock
transform's own random calls (same seed, same boxes), from the file's header alone; the JPEG
is then decoded at the largest DCT scale 1/s (s = 8, 4, 2) that leaves the crop at least as
large as the output (libjpeg's scaled IDCT through OpenCV's ``IMREAD_REDUCED_COLOR_s``, the
decoder the stock ``LoadImageFromFile`` uses), and the crop is resized straight out of the
decoded image, without an intermediate copy::

    LoadImageFromFile -> RandomResizedCrop            ==  RandomResizedCropDecode
    LoadImageFromFile -> LoadPartMap -> RandomResizedCropWithPartMap
                                                      ==  LoadPartMap -> RandomResizedCropDecode
    LoadImageFromFile -> ColorJitter -> RandomFlip -> RandomResizedCropAndInterpolationWithTwoPic
        ==  RandomResizedCropDecodeWithTwoPic(crop_transforms=[ColorJitter, RandomFlip])

Resizing: ``backend='pillow'`` bilinear/bicubic crops on whole pixels (always so at s = 1)
go through torch's antialiased ``interpolate``, which computes PIL's filter (the same output to
within rounding) several times faster; fractional boxes (s > 1) through PIL itself, with the box
in decoded-image coordinates. ``backend='cv2'`` resizes with OpenCV as the stock transform does
(``warpAffine`` for a fractional box). Anything that is not a JPEG (PNG, ...) is decoded whole.

An undecodable file (truncated, not an image, a header that disagrees with the data) raises
``UnreadableImageError``: one line naming the file and the fix; ``SkipCorruptImages``
(``tools/train.py --skip-corrupt-images``) skips and counts it like any unreadable image.
"""
import math
import struct
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine import fileio
from mmpretrain.datasets.transforms import (RandomResizedCrop,
                                            RandomResizedCropAndInterpolationWithTwoPic)
from mmpretrain.registry import TRANSFORMS
from PIL import Image, UnidentifiedImageError

from .part_maps import crop_part_map

#: DCT scales libjpeg decodes at, largest first
DRAFT_SCALES = (8, 4, 2)
_CV2_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
              4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
_CV2_INTERP = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR,
               'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA,
               'lanczos': cv2.INTER_LANCZOS4}
_PIL_INTERP = {'nearest': Image.Resampling.NEAREST, 'bilinear': Image.Resampling.BILINEAR,
               'bicubic': Image.Resampling.BICUBIC, 'area': Image.Resampling.BOX,
               'lanczos': Image.Resampling.LANCZOS}
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
Box = Tuple[float, float, float, float]  # (top, left, height, width) in pixels


class UnreadableImageError(UnidentifiedImageError):
    """An image file that cannot be decoded. A PIL ``UnidentifiedImageError``, so that
    ``SkipCorruptImages`` skips it like PIL's own; the message starts as mmcv's ``failed to load
    image: PATH``, which the tools' one-line error report recognises."""

    def __init__(self, path: str, problem: str):
        super().__init__(
            f'failed to load image: {path} ({problem}). Fix: replace the file with a valid '
            'image or delete it (and its line in the annotation file, if any), or train with '
            '--skip-corrupt-images to skip and count such files.')


def draft_scale(crop_hw: Tuple[float, float], out_hw: Tuple[int, int],
                max_scale: int = 8) -> int:
    """The largest DCT scale ``s`` (8, 4, 2, up to ``max_scale``; else 1) at which a crop of
    ``crop_hw`` original pixels still covers ``out_hw`` output pixels in both directions."""
    for s in DRAFT_SCALES:
        if s <= max_scale and crop_hw[0] >= s * out_hw[0] and crop_hw[1] >= s * out_hw[1]:
            return s
    return 1


def _exif_orientation(exif: bytes) -> int:
    """The orientation tag (1..8) of an EXIF block (``Exif\\0\\0`` + TIFF), 1 if absent."""
    tiff = exif[6:]
    order = {b'II': '<', b'MM': '>'}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = struct.unpack_from(order + 'I', tiff, 4)[0]
    if ifd + 2 > len(tiff):
        return 1
    for i in range(struct.unpack_from(order + 'H', tiff, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            break
        if struct.unpack_from(order + 'H', tiff, entry)[0] == _EXIF_ORIENTATION:
            return struct.unpack_from(order + 'H', tiff, entry + 8)[0]
    return 1


def read_header(content: bytes) -> Optional[Tuple[int, int]]:
    """``(h, w)`` of a JPEG as the decoder returns it (EXIF rotations by 90 degrees swap the
    sides), from its markers up to the frame header; None for anything else (other formats,
    or markers that do not parse: the full decode then decides). PIL parses every table in
    Python, which costs a tenth of the whole decode; this reads only what is needed."""
    if content[:2] != b'\xff\xd8':
        return None
    pos, orientation = 2, 1
    try:
        while pos + 4 <= len(content):
            if content[pos] != 0xFF:
                return None
            marker = content[pos + 1]
            if marker == 0xFF:  # fill byte
                pos += 1
                continue
            length = struct.unpack_from('>H', content, pos + 2)[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header
                h, w = struct.unpack_from('>HH', content, pos + 5)
                if not h or not w:
                    return None
                return (w, h) if orientation in _TRANSPOSED else (h, w)
            if marker == 0xE1 and content[pos + 4:pos + 10] == b'Exif\0\0':
                orientation = _exif_orientation(content[pos + 4:pos + 2 + length])
            pos += 2 + length
    except struct.error:
        return None
    return None


def decode(content: bytes, path: str, scale: int = 1,
           expect_hw: Optional[Tuple[int, int]] = None) -> Tuple[np.ndarray, int]:
    """The file's bytes decoded at 1/``scale``: BGR uint8 ``(ceil(h / s), ceil(w / s), 3)``
    (grayscale and CMYK converted as OpenCV does for ``LoadImageFromFile``) and the scale ``s``.
    ``expect_hw`` is the size from the header: a draft that disagrees with it is redone at full
    size (``s`` = 1), and a full decode that disagrees raises ``UnreadableImageError``, as does
    a file the decoder rejects."""
    img = cv2.imdecode(np.frombuffer(content, np.uint8), _CV2_FLAGS[scale])
    if img is None:
        raise UnreadableImageError(path, 'truncated or corrupt, or not an image')
    if expect_hw is not None:
        want = tuple(-(-n // scale) for n in expect_hw)
        if img.shape[:2] != want:
            if scale > 1:
                return decode(content, path, 1, expect_hw)
            raise UnreadableImageError(
                path, f'its JPEG header says {expect_hw[1]}x{expect_hw[0]} px but it decodes '
                f'to {img.shape[1]}x{img.shape[0]}')
    return img, scale


def scaled_box(box: Box, scale: int) -> Box:
    """A ``(top, left, height, width)`` box of original pixels in the 1/``scale`` image."""
    return tuple(v / scale for v in box)


def resize_box(img: np.ndarray, box: Box, out_hw: Tuple[int, int], interpolation: str,
               backend: str) -> np.ndarray:
    """The ``box`` region of ``img`` ``(H, W, C)`` uint8 (pixel units; fractional allowed)
    resized to ``out_hw``: ``(out_h, out_w, C)`` uint8, C-contiguous.

    ``backend='pillow'`` gives PIL's ``resize(size, filter, box)``, ``'cv2'`` OpenCV's resize
    of the cropped pixels (its ``warpAffine`` when the box does not fall on whole pixels)."""
    top, left, height, width = box
    oh, ow = out_hw
    whole = all(v == int(v) for v in box)
    if backend == 'cv2':
        if whole:
            t, lf, h, w = (int(v) for v in box)
            return np.ascontiguousarray(cv2.resize(img[t:t + h, lf:lf + w], (ow, oh),
                                                   interpolation=_CV2_INTERP[interpolation]))
        sx, sy = width / ow, height / oh  # output pixel centre -> source pixel centre
        matrix = np.array([[sx, 0, left + 0.5 * sx - 0.5], [0, sy, top + 0.5 * sy - 0.5]])
        return cv2.warpAffine(img, matrix, (ow, oh), borderMode=cv2.BORDER_REPLICATE,
                              flags=_CV2_INTERP[interpolation] | cv2.WARP_INVERSE_MAP)
    if whole and interpolation in ('bilinear', 'bicubic'):
        t, lf, h, w = (int(v) for v in box)
        # channels-last in, channels-last out: torch's vectorised uint8 kernel, and the
        # (oh, ow, C) result needs no further copy
        x = torch.from_numpy(img[t:t + h, lf:lf + w]).permute(2, 0, 1).unsqueeze(0)
        x = F.interpolate(x.contiguous(memory_format=torch.channels_last), size=(oh, ow),
                          mode=interpolation, antialias=True)
        return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy())
    pil = Image.fromarray(img).resize((ow, oh), _PIL_INTERP[interpolation],
                                      box=(left, top, left + width, top + height))
    return np.asarray(pil).copy()


def load_cropped(path: str, draw_box, out_hw: Tuple[int, int], max_scale: int = 8,
                 backend_args: Optional[dict] = None) -> Tuple[np.ndarray, Box, Box,
                                                               Tuple[int, int]]:
    """Read ``path``, draw the crop box with ``draw_box(h, w) -> (top, left, height, width)``
    on the original size and decode at the scale the box allows for ``out_hw``.

    Returns the decoded image (BGR uint8, 1/s of the original), the box in its coordinates, the
    box in original coordinates and the original ``(h, w)``."""
    if backend_args is None and '://' not in path:  # a local file, as fileio would read it
        with open(path, 'rb') as f:
            content = f.read()
    else:
        content = fileio.get(path, backend_args=backend_args)
    hw = read_header(content)
    if hw is None:  # not a JPEG: decoded whole, as LoadImageFromFile does
        img, scale = decode(content, path)
        hw = img.shape[:2]
        box = tuple(draw_box(*hw))
    else:
        box = tuple(draw_box(*hw))
        scale = draft_scale(box[2:], out_hw, max_scale)
        img, scale = decode(content, path, scale, hw)
    return img, scaled_box(box, scale), box, tuple(hw)


def _check_not_loaded(results: dict, name: str) -> None:
    """An image already in ``results`` would be decoded twice, and whatever changed it since
    silently dropped: a ``LoadImageFromFile`` left in front of the transform."""
    if 'img' in results:
        raise ValueError(f'{name} reads and decodes the image file itself, but the pipeline '
                         'already loaded it. Fix: remove LoadImageFromFile (and any transform '
                         f'between it and {name}; BEiT\'s go into crop_transforms).')


def _size_only(h: int, w: int) -> np.ndarray:
    """An array of shape ``(h, w, 0)`` (no pixels): what the stock box draws read."""
    return np.empty((h, w, 0), np.uint8)


@TRANSFORMS.register_module()
class RandomResizedCropDecode(RandomResizedCrop):
    """``LoadImageFromFile`` + mmpretrain's ``RandomResizedCrop`` (and SemMAE's
    ``RandomResizedCropWithPartMap``) in one pass: the same arguments, the same boxes for the
    same seed, the JPEG decoded at the largest DCT scale that keeps the crop at least
    ``scale`` (module docstring).

    Args:
        scale, crop_ratio_range, aspect_ratio_range, max_attempts, interpolation, backend: as
            ``RandomResizedCrop``.
        max_draft_scale: the largest DCT scale used (8, 4, 2; 1 decodes every file whole).
        backend_args: as ``LoadImageFromFile``'s (where the files are read from).

    Reads ``img_path`` (and ``part_ids`` when ``LoadPartMap`` ran before it); sets ``img``
    (``scale`` (h, w), 3 BGR channels, uint8), ``img_shape``, ``ori_shape`` and crops
    ``part_ids`` ``(g, g)`` with the same box, keeping its grid.
    """

    def __init__(self, *args, max_draft_scale: int = 8, backend_args: Optional[dict] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        if max_draft_scale not in (1, *DRAFT_SCALES):
            raise ValueError(f'max_draft_scale must be 1, 2, 4 or 8, got {max_draft_scale}')
        if self.backend not in ('cv2', 'pillow'):
            raise ValueError(f"backend must be 'cv2' or 'pillow', got {self.backend!r}")
        self.max_draft_scale = max_draft_scale
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        _check_not_loaded(results, type(self).__name__)
        img, box, ori_box, ori_hw = load_cropped(
            results['img_path'], lambda h, w: self.rand_crop_params(_size_only(h, w)),
            tuple(self.scale), self.max_draft_scale, self.backend_args)
        if 'part_ids' in results:
            results['part_ids'] = crop_part_map(results['part_ids'], ori_hw, ori_box)
        img = resize_box(img, box, tuple(self.scale), self.interpolation, self.backend)
        results.update(img=img, img_shape=img.shape, ori_shape=ori_hw)
        return results

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', max_draft_scale={self.max_draft_scale}, '
                f'backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class RandomResizedCropDecodeWithTwoPic(RandomResizedCropAndInterpolationWithTwoPic):
    """``LoadImageFromFile`` + mmpretrain's ``RandomResizedCropAndInterpolationWithTwoPic``
    (BEiT's crop resized to two views) in one pass, with the same arguments and boxes.

    ``crop_transforms`` (BEiT's ``ColorJitter`` and horizontal ``RandomFlip``, which the stock
    pipeline runs on the whole image before its crop) run on the decoded crop before the two
    resizes; both views see them, as in the stock pipeline. The one difference: contrast is
    jittered about the crop's mean gray level instead of the whole image's.

    Args:
        size, second_size, scale, ratio, interpolation, second_interpolation: as the stock
            transform (its views are resized by OpenCV, so are these).
        crop_transforms: transform configs applied to the crop (``img``: its pixels at the
            decoded scale, slightly more when the box is fractional).
        max_draft_scale, backend_args: as ``RandomResizedCropDecode``.

    Sets ``img`` to ``[view, second view]`` (or the first view alone without
    ``second_size``), each BGR uint8, and ``ori_shape``.
    """

    def __init__(self, *args, crop_transforms: Sequence[dict] = (), max_draft_scale: int = 8,
                 backend_args: Optional[dict] = None, **kwargs):
        super().__init__(*args, **kwargs)
        if max_draft_scale not in (1, *DRAFT_SCALES):
            raise ValueError(f'max_draft_scale must be 1, 2, 4 or 8, got {max_draft_scale}')
        self.crop_transforms = [TRANSFORMS.build(t) if isinstance(t, dict) else t
                                for t in crop_transforms]
        for t in self.crop_transforms:
            if getattr(t, 'direction', 'horizontal') not in ('horizontal', ['horizontal']):
                raise ValueError(f'crop_transforms: {t!r} flips other than horizontally; only '
                                 'horizontal flips can follow the crop box. Fix: use '
                                 "RandomFlip(direction='horizontal').")
        self.max_draft_scale = max_draft_scale
        self.backend_args = backend_args

    def _out_sizes(self) -> List[Tuple[int, int]]:
        """(h, w) of each view: ``mmcv.imresize`` reads the stock ``size`` as (w, h)."""
        sizes = [self.size] + ([self.second_size] if self.second_size is not None else [])
        return [(s[1], s[0]) for s in sizes]

    def transform(self, results: dict) -> dict:
        _check_not_loaded(results, type(self).__name__)
        sizes = self._out_sizes()
        largest = (max(s[0] for s in sizes), max(s[1] for s in sizes))
        img, box, _, ori_hw = load_cropped(
            results['img_path'],
            lambda h, w: self.get_params(_size_only(h, w), self.scale, self.ratio),
            largest, self.max_draft_scale, self.backend_args)
        interpolation = (np.random.choice(self.interpolation)
                         if isinstance(self.interpolation, (tuple, list)) else self.interpolation)
        # the whole pixels around the box, then the box relative to them
        top, left, height, width = box
        t0, l0 = int(math.floor(top)), int(math.floor(left))
        t1 = min(int(math.ceil(top + height)), img.shape[0])
        l1 = min(int(math.ceil(left + width)), img.shape[1])
        crop = img[t0:t1, l0:l1]
        box = (top - t0, left - l0, height, width)
        if self.crop_transforms:
            results['img'] = np.ascontiguousarray(crop)
            results.pop('flip', None)  # set afresh by a RandomFlip among them
            for t in self.crop_transforms:
                results = t(results)
            crop = results['img']
            if results.get('flip'):  # the box follows the mirrored pixels
                box = (box[0], crop.shape[1] - box[1] - box[3], box[2], box[3])
        views = [resize_box(crop, box, sizes[0], interpolation, 'cv2')]
        if self.second_size is not None:
            views.append(resize_box(crop, box, sizes[1], self.second_interpolation, 'cv2'))
        results.update(img=views if len(views) > 1 else views[0], ori_shape=ori_hw)
        return results

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', crop_transforms={self.crop_transforms}, '
                f'max_draft_scale={self.max_draft_scale}, backend_args={self.backend_args})')
