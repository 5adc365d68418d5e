"""Small segmentation data sets written in the exact folder layouts of ADE20K and PascalVOC 2012,
so that mmseg's own ``ADE20KDataset`` and ``PascalVOCDataset`` read them (tests, demo, trying a
config without the real data)::

    ADE20K (ADEChallengeData2016)
    {root}/images/{training,validation}/ADE_{train,val}_{n:08d}.jpg
    {root}/annotations/{training,validation}/ADE_{train,val}_{n:08d}.png
        8-bit ids: 0 = unlabelled (ignored), k = class k - 1 of the 150 (reduce_zero_label)

    PascalVOC 2012 (VOCdevkit/VOC2012)
    {root}/JPEGImages/2007_{n:06d}.jpg
    {root}/SegmentationClass/2007_{n:06d}.png
        palette PNG: 0 = background, 1..20 = classes, 255 = object border (ignored)
    {root}/ImageSets/Segmentation/{train,val,trainval}.txt

A scene is an RGB image ``(H, W, 3)`` uint8 and its label map ``(H, W)`` uint8 of raw ids (the
values written to the PNG). Objects are pasted with an opacity ``alpha``: ``alpha >= 0.5`` is the
object's class, a fainter edge (``0.1 <= alpha < 0.5``) is the layout's ignore id, as VOC marks
object borders. Two kinds of objects: coloured rectangles and ellipses (tests: the class decides
shape and colour) and MNIST-5k digits (the demo: white digits on black, class = digit, the
pictures the demo's MAE was pretrained on).
"""
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .embedded import DONE_MARK, load_mnist5k, split_indices

Scene = Tuple[np.ndarray, np.ndarray]
LAYOUTS = ('ade20k', 'voc')
ADE_IGNORE, VOC_IGNORE = 0, 255
# ADE20K raw ids of the demo: 0 = the black background and the digits' faint rims, which ADE20K
# calls "unlabelled" and mmseg ignores (reduce_zero_label), 1..10 = digits 0..9 (classes 0..9):
# every evaluated pixel is a digit, and the task is to tell which.
DIGIT_BACKGROUND = ADE_IGNORE
DIGIT_CLASSES = tuple(f'digit {d}' for d in range(10))


def voc_palette() -> List[int]:
    """PascalVOC's 256-colour palette (flat RGB list): the bits of the index spread over the
    high bits of R, G and B, so 0 is black, 255 the cream border colour."""
    palette = []
    for index in range(256):
        rgb, value = [0, 0, 0], index
        for bit in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << bit
            value >>= 3
        palette.extend(rgb)
    return palette


def paste(image: np.ndarray, label: np.ndarray, alpha: np.ndarray, color: Sequence[float],
          top: int, left: int, raw_id: int, ignore_id: Optional[int]) -> None:
    """Blend an object of opacity ``alpha`` ``(h, w)`` in [0, 1] and colour ``color`` (RGB) into
    ``image`` ``(H, W, 3)`` float at ``(top, left)``, and write its raw id into ``label``
    ``(H, W)``; the faint edge gets ``ignore_id`` (or is left as it was if None)."""
    h, w = alpha.shape
    region = (slice(top, top + h), slice(left, left + w))
    image[region] = image[region] * (1 - alpha[..., None]) + alpha[..., None] * np.asarray(color)
    if ignore_id is not None:
        label[region][(alpha >= 0.1) & (alpha < 0.5)] = ignore_id
    label[region][alpha >= 0.5] = raw_id


def shape_alpha(kind: str, height: int, width: int, supersample: int = 4) -> np.ndarray:
    """Opacity ``(height, width)`` of a filled rectangle or ellipse with anti-aliased edges."""
    ys = (np.arange(height * supersample) + 0.5) / (height * supersample) * 2 - 1
    xs = (np.arange(width * supersample) + 0.5) / (width * supersample) * 2 - 1
    if kind == 'ellipse':
        inside = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1
    else:  # a rectangle one supersampled pixel inside the box, so its rim is anti-aliased too
        inside = (np.abs(ys[:, None]) < 1 - 1.5 / (height * supersample)) & \
                 (np.abs(xs[None, :]) < 1 - 1.5 / (width * supersample))
    return inside.reshape(height, supersample, width, supersample).mean((1, 3))


def class_color(raw_id: int) -> np.ndarray:
    """A saturated RGB colour fixed by the class id (so a small model can tell the classes)."""
    rng = np.random.default_rng(1000 + int(raw_id))
    color = rng.uniform(0, 255, 3)
    color[rng.integers(3)] = 255.
    return color


def shape_scenes(num: int, size: Tuple[int, int], raw_ids: Sequence[int], background_id: int,
                 ignore_id: Optional[int], rng: np.random.Generator,
                 max_objects: int = 3) -> List[Scene]:
    """``num`` scenes of ``size`` (H, W): a noisy grey background of class ``background_id``
    with 1..``max_objects`` objects; class ``raw_ids[i]`` is an ellipse for even i, a rectangle
    for odd i, in its own colour."""
    height, width = size
    scenes = []
    for _ in range(num):
        image = rng.normal(110, 12, (height, width, 3)).clip(0, 255)
        label = np.full((height, width), background_id, np.uint8)
        for _ in range(rng.integers(1, max_objects + 1)):
            k = int(rng.integers(len(raw_ids)))
            h = int(rng.integers(height // 4, height // 2 + 1))
            w = int(rng.integers(width // 4, width // 2 + 1))
            alpha = shape_alpha('ellipse' if k % 2 == 0 else 'rectangle', h, w)
            paste(image, label, alpha, class_color(raw_ids[k]), int(rng.integers(height - h + 1)),
                  int(rng.integers(width - w + 1)), raw_ids[k], ignore_id)
        scenes.append((image.round().astype(np.uint8), label))
    return scenes


def digit_scenes(digits: np.ndarray, classes: np.ndarray, num: int, size: int,
                 rng: np.random.Generator, grid: int = 1, ignore_id: int = ADE_IGNORE,
                 background_id: int = DIGIT_BACKGROUND) -> List[Scene]:
    """``num`` black ``size`` x ``size`` scenes of white 28x28 ``digits`` ``(N, 28, 28)`` uint8
    with classes ``classes`` ``(N,)`` in 0..9. The canvas is cut into ``grid`` x ``grid`` cells
    (``size // grid >= 28``); with ``grid = 1`` each scene is one digit, else each cell holds a
    random digit with probability 0.6 (at least one per scene), shifted at random inside its
    cell. Raw ids: ``background_id`` (by default ADE20K's unlabelled 0, as the rims) and
    ``1 + digit``."""
    cell = size // grid
    if cell < 28:
        raise ValueError(f'{grid}x{grid} cells of a {size}x{size} scene are smaller than a digit')
    scenes = []
    for _ in range(num):
        image = np.zeros((size, size, 3))
        label = np.full((size, size), background_id, np.uint8)
        cells = np.flatnonzero(rng.random(grid * grid) < 0.6)
        for c in cells if len(cells) else [int(rng.integers(grid * grid))]:
            i = int(rng.integers(len(digits)))
            top = (c // grid) * cell + int(rng.integers(cell - 28 + 1))
            left = (c % grid) * cell + int(rng.integers(cell - 28 + 1))
            paste(image, label, digits[i] / 255., (255., 255., 255.), top, left,
                  1 + int(classes[i]), ignore_id)
        scenes.append((image.round().astype(np.uint8), label))
    return scenes


def _save_image(path: str, image: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def write_ade20k(root: str, training: Sequence[Scene], validation: Sequence[Scene]) -> None:
    """Write the scenes in ADE20K's layout (module docstring); label maps as 8-bit PNGs."""
    for split, prefix, scenes in (('training', 'ADE_train', training),
                                  ('validation', 'ADE_val', validation)):
        for n, (image, label) in enumerate(scenes, 1):
            name = f'{prefix}_{n:08d}'
            _save_image(osp.join(root, 'images', split, name + '.jpg'), image)
            _save_image(osp.join(root, 'annotations', split, name + '.png'), label)


def write_voc(root: str, train: Sequence[Scene], val: Sequence[Scene]) -> None:
    """Write the scenes in PascalVOC 2012's layout (module docstring); label maps as palette
    PNGs like VOC's, listed in ``ImageSets/Segmentation``."""
    palette = voc_palette()
    names = {'train': [], 'val': []}
    for split, scenes, offset in (('train', train, 0), ('val', val, len(train))):
        for n, (image, label) in enumerate(scenes, offset + 1):
            name = f'2007_{n:06d}'
            _save_image(osp.join(root, 'JPEGImages', name + '.jpg'), image)
            png = Image.fromarray(label, mode='P')
            png.putpalette(palette)
            os.makedirs(osp.join(root, 'SegmentationClass'), exist_ok=True)
            png.save(osp.join(root, 'SegmentationClass', name + '.png'))
            names[split].append(name)
    sets = osp.join(root, 'ImageSets', 'Segmentation')
    os.makedirs(sets, exist_ok=True)
    names['trainval'] = names['train'] + names['val']
    for split, lines in names.items():
        with open(osp.join(sets, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')


def _write_once(root: str, settings: str, write) -> bool:
    """Run ``write()`` into a clean ``root`` unless a finished one with ``settings`` is there.
    Returns whether it wrote."""
    mark = osp.join(root, DONE_MARK)
    if osp.isfile(mark):
        with open(mark) as f:
            if f.read().strip() == settings:
                return False
    shutil.rmtree(root, ignore_errors=True)  # files of other settings must not leak in
    write()
    with open(mark, 'w') as f:
        f.write(settings + '\n')
    return True


def generate_shapes(root: str, layout: str, num_train: int = 8, num_val: int = 4,
                    size: Tuple[int, int] = (48, 64), seed: int = 0) -> Dict[str, int]:
    """A shapes data set in ``layout`` ('ade20k' or 'voc') under ``root``, object borders
    ignored. ADE20K: background raw id 1, objects raw 2..7 (classes 0 and 1..6 after
    reduce_zero_label); VOC: background 0, objects 1..6. Returns the image count per split."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got '{layout}'")
    rng = np.random.default_rng(seed)
    if layout == 'ade20k':
        make = dict(raw_ids=range(2, 8), background_id=1, ignore_id=ADE_IGNORE)
    else:
        make = dict(raw_ids=range(1, 7), background_id=0, ignore_id=VOC_IGNORE)
    train = shape_scenes(num_train, size, rng=rng, **make)
    val = shape_scenes(num_val, size, rng=rng, **make)
    writer = write_ade20k if layout == 'ade20k' else write_voc
    _write_once(root, f'shapes {layout} {num_train} {num_val} {size} {seed}',
                lambda: writer(root, train, val))
    return {'train': num_train, 'val': num_val}


def prepare_mnist_seg(root: str = 'data/mnist5k_seg', num_train: int = 4000, num_val: int = 1000,
                      size: int = 28, grid: int = 1, seed: int = 0) -> Dict[str, int]:
    """The demo's data set in ADE20K's layout: :func:`digit_scenes` of the MNIST-5k digits,
    training scenes from the digits of ``data/mnist5k/train`` (the images the demo's MAE was
    pretrained on), validation scenes from those of ``val`` only. The default, one 28x28 digit
    per image, keeps the 7x7 token grid the demo's ViT was pretrained on. Written once per
    settings."""
    images, labels = load_mnist5k()
    split = split_indices(labels, num_val=100, num_labelled=50)  # prepare_mnist5k's split

    def write():
        rng = np.random.default_rng(seed)
        train = digit_scenes(images[split['train']], labels[split['train']], num_train, size,
                             rng, grid)
        val = digit_scenes(images[split['val']], labels[split['val']], num_val, size, rng, grid)
        write_ade20k(root, train, val)

    _write_once(root, f'mnist digits ade20k (0 unlabelled, 1-10 digits) {num_train} {num_val} '
                      f'{size} {grid} {seed}', write)
    return {'train': num_train, 'val': num_val}
