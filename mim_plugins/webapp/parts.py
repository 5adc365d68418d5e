"""Part maps of one uploaded image, for the part-guided (SemMAE) strategy.

Two ways, and the demo says which one it used:

* **stage-1 centroids**: when SemMAE stage 1 has run (``make demo-semmae`` writes
  ``data/mnist5k/part_maps/train/centroids.pth``), the image's patch features from the frozen
  ViT recorded in that file are assigned to the nearest saved centroid, exactly as the stage-1
  tool labels its training images: part ``k`` means the same thing in every image.
* **per-image k-means**: otherwise, the chosen model's own last-layer patch tokens of this one
  image are clustered into K parts (k-means++ then Lloyd iterations): the parts are coherent
  regions of this image, but ids carry no meaning across images.
"""
import functools
import os
import os.path as osp
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ..parts.kmeans import assign, kmeans_plus_plus
from ..utils.errors import UserInputError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CENTROIDS = osp.join(ROOT, 'data', 'mnist5k', 'part_maps', 'train', 'centroids.pth')


def _repo_path(path: str) -> str:
    """Paths recorded in a centroids file are relative to where stage 1 ran (the repo root)."""
    return path if osp.isabs(path) or osp.exists(path) else osp.join(ROOT, path)


@functools.lru_cache(maxsize=2)
def _stage1(centroids_file: str, mtime: float) -> Tuple[nn.Module, dict, Tensor]:
    """(frozen ViT, its normalisation, centroids (K, C)) of a stage-1 centroids file."""
    from ..parts.features import build_frozen_vit

    saved = torch.load(centroids_file, map_location='cpu', weights_only=True)
    if not isinstance(saved, dict) or 'centroids' not in saved:
        raise UserInputError(f"'{centroids_file}' is not a centroids file of SemMAE stage 1. "
                             'Fix: pass the centroids.pth that tools/part_learning/'
                             'learn_parts.py wrote, or leave the field empty.')
    vit, norm = build_frozen_vit(_repo_path(saved['config']), _repo_path(saved['checkpoint']))
    return vit, norm, saved['centroids']


def stage1_available(centroids_file: Optional[str]) -> Optional[str]:
    """Why ``centroids_file`` cannot be used, or None when it can (file and its ViT exist)."""
    if not centroids_file:
        return 'no stage-1 centroids file given'
    if not osp.isfile(centroids_file):
        return f"no stage-1 centroids at '{centroids_file}' (make demo-semmae writes them)"
    saved = torch.load(centroids_file, map_location='cpu', weights_only=True)
    ckpt = _repo_path(saved.get('checkpoint', '')) if isinstance(saved, dict) else ''
    if not osp.isfile(ckpt):
        return f"the stage-1 ViT checkpoint '{ckpt}' recorded in '{centroids_file}' is missing"
    return None


@torch.no_grad()
def stage1_parts(image: np.ndarray, centroids_file: str, grid: Tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (h, w) uint8 ids of the nearest stage-1 centroid per patch."""
    from ..parts.features import image_size, patch_features
    from ..parts.part_learner import normalise_image

    vit, norm, centroids = _stage1(centroids_file, os.stat(centroids_file).st_mtime)
    x = normalise_image(Image.fromarray(image), image_size(vit), **norm)
    feats = patch_features(vit, x[None], grid)[0]  # (h * w, C), unit length
    return assign(feats, centroids).view(grid).numpy().astype(np.uint8)


@torch.no_grad()
def last_layer_tokens(backbone: nn.Module, inputs: Tensor) -> Tensor:
    """(B, N, C) output tokens of the backbone's last transformer layer on whole images."""
    from ..visualization.attention import run_unmasked

    captured = []
    handle = backbone.layers[-1].register_forward_hook(
        lambda module, args, output: captured.append(output))
    try:
        run_unmasked(backbone, inputs)
    finally:
        handle.remove()
    return captured[0]


def kmeans(x: Tensor, k: int, iters: int = 20, seed: int = 0) -> Tensor:
    """Lloyd's k-means of (N, D) points from k-means++ seeds -> (N,) ids, renumbered by
    decreasing cluster size (ties: lower id first), so part 0 is the largest."""
    generator = torch.Generator().manual_seed(seed)
    centres = kmeans_plus_plus(x, k, generator=generator)
    for _ in range(iters):
        labels = assign(x, centres)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        filled = counts > 0  # an empty cluster keeps its centre
        centres[filled] = sums[filled] / counts[filled, None].to(x.dtype)
    labels = assign(x, centres)
    order = torch.argsort(-torch.bincount(labels, minlength=k), stable=True)
    return torch.argsort(order)[labels]


def image_parts(backbone: nn.Module, inputs: Tensor, grid: Tuple[int, int],
                num_parts: int = 7, seed: int = 0) -> np.ndarray:
    """(1, 3, H, W) normalised image -> (h, w) uint8 part ids by per-image k-means of the
    backbone's unit-length last-layer patch tokens (cosine geometry, as stage 1 uses)."""
    tokens = last_layer_tokens(backbone, inputs)[0]
    patches = F.normalize(tokens[tokens.shape[0] - grid[0] * grid[1]:], dim=-1)
    k = min(num_parts, patches.shape[0])
    return kmeans(patches, k, seed=seed).view(grid).numpy().astype(np.uint8)
