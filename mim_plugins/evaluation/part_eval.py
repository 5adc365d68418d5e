"""Score part maps against the ground-truth parts of the generated part scenes
(``mim_plugins.datasets.part_scenes``): NMI, ARI and Hungarian-matched mIoU over the
foreground patches of every image, pooled (part ids are dataset-level: part k should be the same
part in every image)."""
import glob
import os.path as osp
from typing import Dict, List

import numpy as np
from PIL import Image

from ..datasets.part_maps import part_map_path
from ..datasets.part_scenes import patch_labels
from .part_metrics import part_scores


def grid_parts(grid: int, num_parts: int) -> np.ndarray:
    """The fixed spatial grid control: (grid, grid) ids of ``num_parts`` blocks of
    ``rows x cols`` (rows = floor(sqrt(K)), cols = ceil(K / rows)), the same in every image and
    blind to it; with K not a product, the last ids absorb the spare blocks."""
    rows = int(np.floor(np.sqrt(num_parts)))
    cols = int(np.ceil(num_parts / rows))
    r = np.arange(grid) * rows // grid
    c = np.arange(grid) * cols // grid
    return np.minimum(r[:, None] * cols + c[None, :], num_parts - 1).astype(np.uint8)


def scene_images(img_prefix: str) -> List[str]:
    """The sorted scene images under ``img_prefix`` (``.../test``)."""
    return sorted(glob.glob(osp.join(img_prefix, '**', '*.png'), recursive=True))


def collect(img_prefix: str, label_prefix: str, part_root: str, grid: int):
    """(true labels, predicted ids) of the foreground patches of every image, flat."""
    truth, pred = [], []
    for path in scene_images(img_prefix):
        labels = np.asarray(Image.open(part_map_path(label_prefix, img_prefix, path)))
        true = patch_labels(labels, grid)
        ids = np.asarray(Image.open(part_map_path(part_root, img_prefix, path)))
        if ids.shape != true.shape:
            raise ValueError(f"part map of '{path}' is {ids.shape}, the labels {true.shape}")
        fg = true > 0
        truth.append(true[fg])
        pred.append(ids[fg])
    return np.concatenate(truth), np.concatenate(pred)


def score_maps(img_prefix: str, label_prefix: str, part_root: str,
               grid: int) -> Dict[str, float]:
    """dict(nmi, ari, miou) of the part maps under ``part_root`` against the labels."""
    return part_scores(*collect(img_prefix, label_prefix, part_root, grid))


def score_grid(img_prefix: str, label_prefix: str, grid: int, num_parts: int) -> Dict[str, float]:
    """The same scores for the fixed spatial grid of ``grid_parts``."""
    fixed = grid_parts(grid, num_parts)
    truth, pred = [], []
    for path in scene_images(img_prefix):
        true = patch_labels(np.asarray(Image.open(part_map_path(label_prefix, img_prefix, path))),
                            grid)
        truth.append(true[true > 0])
        pred.append(fixed[true > 0])
    return part_scores(np.concatenate(truth), np.concatenate(pred))
