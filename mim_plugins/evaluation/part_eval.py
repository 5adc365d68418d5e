"""Score part maps against ground truth: NMI, ARI and Hungarian-matched mIoU over the patches of
every image, pooled (part ids are dataset-level: part k should be the same part in every
image). Two kinds of ground truth:

- ``scene_parts``: the true parts of the generated part scenes
  (``mim_plugins.datasets.part_scenes``), scored over the foreground patches;
- ``digit_mask``: digit against background on the segmentation demo's digit scenes
  (``mim_plugins.datasets.seg_data``, ADE20K layout), scored over every patch.
"""
from typing import Callable, Dict, List

import numpy as np
from PIL import Image

from ..datasets.part_maps import part_map_path
from ..datasets.part_scenes import patch_labels
from ..parts.part_learner import list_images
from .part_metrics import part_scores

# (S, S) pixel labels, grid -> (grid, grid) patch labels; 0 is the background
Truth = Callable[[np.ndarray, int], np.ndarray]


def scene_parts(labels: np.ndarray, grid: int) -> np.ndarray:
    """The part scenes' majority part per patch (0 background, 1 head, 2 body, 3 legs)."""
    return patch_labels(labels, grid)


def digit_mask(labels: np.ndarray, grid: int) -> np.ndarray:
    """The digit scenes' ADE20K raw ids (0 background and faint rims, 1..10 digits) -> 1 where
    most of the patch's pixels belong to the digit, else 0."""
    return patch_labels((labels > 0).astype(np.uint8), grid, num_labels=2)


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
    """The sorted images under ``img_prefix`` (``.../test``), recursively."""
    return list_images(img_prefix)


def collect(img_prefix: str, label_prefix: str, grid: int, ids_of: Callable[[str], np.ndarray],
            truth: Truth = scene_parts, foreground_only: bool = True):
    """(true labels, predicted ids) of the scored patches of every image, flat: ``ids_of(path)``
    the (grid, grid) predicted ids of an image; the label map of ``img_prefix/REL.ext`` is
    ``label_prefix/REL.png``."""
    truths, preds = [], []
    for path in scene_images(img_prefix):
        true = truth(np.asarray(Image.open(part_map_path(label_prefix, img_prefix, path))), grid)
        ids = ids_of(path)
        if ids.shape != true.shape:
            raise ValueError(f"part map of '{path}' is {ids.shape}, the labels {true.shape}")
        keep = true > 0 if foreground_only else np.ones(true.shape, bool)
        truths.append(true[keep])
        preds.append(ids[keep])
    return np.concatenate(truths), np.concatenate(preds)


def score_maps(img_prefix: str, label_prefix: str, part_root: str, grid: int,
               truth: Truth = scene_parts, foreground_only: bool = True) -> Dict[str, float]:
    """dict(nmi, ari, miou) of the part maps under ``part_root`` against the labels."""
    return part_scores(*collect(
        img_prefix, label_prefix, grid,
        lambda path: np.asarray(Image.open(part_map_path(part_root, img_prefix, path))),
        truth, foreground_only))


def score_grid(img_prefix: str, label_prefix: str, grid: int, num_parts: int,
               truth: Truth = scene_parts, foreground_only: bool = True) -> Dict[str, float]:
    """The same scores for the fixed spatial grid of ``grid_parts``."""
    fixed = grid_parts(grid, num_parts)
    return part_scores(*collect(img_prefix, label_prefix, grid, lambda path: fixed, truth,
                                foreground_only))
