"""Images with ground-truth parts for scoring part discovery ("part scenes").

Each image holds one creature on a textured background: a head (top), a body (middle) and legs
(bottom), at a random place and size. A part is defined by its PLACE in the object, never by its
look: every part (and the background) draws its texture independently from one shared pool
(a random pair of colours in random stripes, or a flat colour), so two images rarely agree on
which colour is the head, and clustering colours cannot find the parts.

Labels per pixel: 0 background, 1 head, 2 body, 3 legs. ``patch_labels`` turns them into one
label per patch (the majority), the unit a part map scores.
"""
import os
import os.path as osp
from typing import Tuple

import numpy as np
from PIL import Image

PART_NAMES = ('background', 'head', 'body', 'legs')


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """One texture of the shared pool: (size, size, 3) float in [0, 255]. Two random colours
    mixed by stripes of random angle, period (3-8 px) and phase; one time in four a flat
    colour."""
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if rng.random() < 0.25:
        return np.broadcast_to(a, (size, size, 3)).astype(np.float64)
    yy, xx = np.mgrid[:size, :size]
    angle, period, phase = rng.uniform(0, np.pi), rng.uniform(3, 8), rng.uniform(0, 2 * np.pi)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period
                              + phase)
    return a + (b - a) * wave[..., None]


def creature_labels(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) uint8 part labels of one creature of random height (65-95 % of the image),
    width (60-90 % of its height) and place (fully inside the image)."""
    h = rng.uniform(0.65, 0.95) * size
    w = rng.uniform(0.6, 0.9) * h
    top, left = rng.uniform(0, size - h), rng.uniform(0, size - w)
    cx = left + w / 2
    yy, xx = np.mgrid[:size, :size] + 0.5
    labels = np.zeros((size, size), np.uint8)
    leg_rows = (yy >= top + 0.62 * h) & (yy < top + h)
    legs = leg_rows & ((np.abs(xx - (cx - 0.25 * w)) < 0.12 * w)
                       | (np.abs(xx - (cx + 0.25 * w)) < 0.12 * w))
    body = ((yy - (top + 0.52 * h)) / (0.22 * h)) ** 2 + ((xx - cx) / (0.5 * w)) ** 2 < 1
    head = ((yy - (top + 0.17 * h)) / (0.17 * h)) ** 2 + ((xx - cx) / (0.27 * w)) ** 2 < 1
    labels[legs] = 3
    labels[body] = 2
    labels[head] = 1
    return labels


def part_scene(rng: np.random.Generator, size: int = 40) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: (size, size, 3) uint8 image and (size, size) uint8 labels."""
    labels = creature_labels(rng, size)
    image = np.zeros((size, size, 3))
    for label in range(len(PART_NAMES)):
        where = labels == label
        image[where] = texture(rng, size)[where]
    return image.round().clip(0, 255).astype(np.uint8), labels


def patch_labels(labels: np.ndarray, grid: int, num_labels: int = len(PART_NAMES)) -> np.ndarray:
    """(S, S) pixel labels in ``0..num_labels-1`` -> (grid, grid) majority label of each patch
    (ties: lower label); S must be a multiple of grid."""
    size = labels.shape[0]
    if size % grid:
        raise ValueError(f'image side {size} is not a multiple of the grid {grid}')
    p = size // grid
    cells = labels.reshape(grid, p, grid, p).transpose(0, 2, 1, 3).reshape(grid, grid, -1)
    counts = np.stack([(cells == k).sum(-1) for k in range(num_labels)], -1)
    return counts.argmax(-1).astype(np.uint8)


def write_part_scenes(root: str, num_train: int = 2000, num_test: int = 300, size: int = 40,
                      seed: int = 0) -> str:
    """Write ``root/{train,test}/scenes/NNNNN.png`` (CustomDataset layout) and the pixel labels
    at ``root/labels/{train,test}/scenes/NNNNN.png``. Train and test come from one seeded
    stream, test after train (held out). Returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in (('train', num_train), ('test', num_test)):
        for folder in (osp.join(root, split, 'scenes'), osp.join(root, 'labels', split, 'scenes')):
            os.makedirs(folder, exist_ok=True)
        for i in range(count):
            image, labels = part_scene(rng, size)
            Image.fromarray(image).save(osp.join(root, split, 'scenes', f'{i:05d}.png'))
            Image.fromarray(labels).save(osp.join(root, 'labels', split, 'scenes', f'{i:05d}.png'))
    return root
