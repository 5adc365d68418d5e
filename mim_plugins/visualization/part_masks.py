"""SemMAE figures: each image with its semantic part map and its masks at several λ.

One row per image: original | part map overlay | masked image at each λ. Every masked column
holds exactly ``num_masked(L, r)`` gray patches; from λ = 1 to λ = 0 the masked patches move
from ~r of every part (intra-part) to whole parts (inter-part).
"""
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from ..masking import num_masked, semantic_part_mask
from ..utils.errors import MissingFileError, UserInputError
from ..datasets.read_image import read_rgb
from .images import save_grid

MASK_GRAY = (128, 128, 128)

# Kelly's colours of maximum contrast (white, black and gray left out), in his order: the first
# few are the most distinct, and SemMAE uses K = 7 parts.
_KELLY = [(0xF3, 0xC3, 0x00), (0x87, 0x56, 0x92), (0xF3, 0x84, 0x00), (0xA1, 0xCA, 0xF1),
          (0xBE, 0x00, 0x32), (0xC2, 0xB2, 0x80), (0x00, 0x88, 0x56), (0xE6, 0x8F, 0xAC),
          (0x00, 0x67, 0xA5), (0xF9, 0x93, 0x79), (0x60, 0x4E, 0x97), (0xF6, 0xA6, 0x00),
          (0xB3, 0x44, 0x6C), (0xDC, 0xD3, 0x00), (0x88, 0x2D, 0x17), (0x8D, 0xB6, 0x00),
          (0x65, 0x45, 0x22), (0xE2, 0x58, 0x22), (0x2B, 0x3D, 0x26)]


def _make_palette() -> np.ndarray:
    """256 distinct, non-gray RGB colours: Kelly's, then a 7-level RGB lattice visited with a
    stride coprime to its size so that consecutive ids get dissimilar colours."""
    levels = np.linspace(0, 255, 7).round().astype(np.uint8)
    lattice = np.stack(np.meshgrid(levels, levels, levels, indexing='ij'), -1).reshape(-1, 3)
    lattice = lattice[np.arange(len(lattice)) * 97 % len(lattice)]
    seen = set(_KELLY)
    colours = list(_KELLY)
    for colour in map(tuple, lattice.tolist()):
        if colour[0] == colour[1] == colour[2] or colour in seen:
            continue  # grays are kept for masked patches
        seen.add(colour)
        colours.append(colour)
    return np.array(colours[:256], dtype=np.uint8)


PALETTE = _make_palette()


def colorize_parts(part_ids: np.ndarray, num_parts: int) -> np.ndarray:
    """(h, w) integer part ids in ``0..num_parts-1`` -> (h, w, 3) uint8, one fixed colour per id
    (``PALETTE[id]``: the same id has the same colour in every image and figure)."""
    part_ids = np.asarray(part_ids)
    if not 1 <= num_parts <= len(PALETTE):
        raise ValueError(f'num_parts must lie in 1..{len(PALETTE)}, got {num_parts}')
    if part_ids.size and (part_ids.min() < 0 or part_ids.max() >= num_parts):
        raise ValueError(f'part ids must lie in 0..{num_parts - 1}, got '
                         f'{part_ids.min()}..{part_ids.max()}')
    return PALETTE[part_ids.astype(np.int64)]


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour (h, w, ...) -> (height, width, ...): pixel (y, x) takes cell
    (y * h // height, x * w // width), so every cell covers its share of the image."""
    rows = np.arange(height) * grid.shape[0] // height
    cols = np.arange(width) * grid.shape[1] // width
    return grid[np.ix_(rows, cols)]


def overlay_parts(image: np.ndarray, part_ids: np.ndarray, alpha: float = 0.5,
                  num_parts: Optional[int] = None) -> np.ndarray:
    """Blend the coloured part map over ``image``: ``(1 - alpha) * image + alpha * colours``.

    Args:
        image: (H, W, 3) uint8.
        part_ids: (h, w) part ids of a grid partition of the whole image, upsampled (nearest)
            to (H, W).
        alpha: opacity of the part colours in [0, 1]; 0 returns the image unchanged.
        num_parts: K for :func:`colorize_parts` (default: the largest id + 1).

    Returns:
        (H, W, 3) uint8.
    """
    part_ids = np.asarray(part_ids)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must lie in [0, 1], got {alpha!r}')
    num_parts = int(part_ids.max()) + 1 if num_parts is None else num_parts
    colours = _upsample(colorize_parts(part_ids, num_parts), *image.shape[:2])
    blend = (1 - alpha) * image.astype(np.float64) + alpha * colours.astype(np.float64)
    return np.clip(np.floor(blend + 0.5), 0, 255).astype(np.uint8)


def masked_image(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the patches where the (h, w) bool ``mask`` is True
    (masked) painted ``MASK_GRAY``; the mask is upsampled (nearest) to (H, W)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    out[_upsample(np.asarray(mask, dtype=bool), *image.shape[:2])] = MASK_GRAY
    return out


def load_part_ids(path: str, image_path: str, num_parts: Optional[int] = None) -> np.ndarray:
    """Read the part map ``path`` of ``image_path``: a (h, w) uint8 array of part ids.

    Raises ``UserInputError`` naming the image when the map is missing, not a single-channel
    8-bit image, or holds an id ``>= num_parts``.
    """
    if not osp.isfile(path):
        raise MissingFileError(
            f"No part map for image '{image_path}': '{path}' does not exist. Fix: write its part "
            'map (SemMAE stage 1: one 8-bit PNG of part ids per image, laid out as '
            'configs/semmae/README.md says), or point the part root / image prefix at the maps.')
    with Image.open(path) as img:
        mode = img.mode
        part_ids = np.array(img)
    if mode != 'L' or part_ids.ndim != 2:
        raise UserInputError(f"Part map '{path}' of image '{image_path}' is a {mode} image of "
                             f'shape {part_ids.shape}; a part map is a single-channel 8-bit PNG. '
                             'Fix: write it with mim_plugins.datasets.part_maps.save_part_map.')
    if num_parts is not None and part_ids.max() >= num_parts:
        raise UserInputError(f"Part map '{path}' of image '{image_path}' holds part id "
                             f'{part_ids.max()}, but num_parts={num_parts} allows '
                             f'0..{num_parts - 1}. Fix: set num_parts to the number of parts '
                             'the maps use, or correct the map.')
    return part_ids


def render_semmae_masks(image_path: Union[str, Sequence[str]],
                        part_map_path: Union[str, Sequence[str]], out_file: str,
                        lams: Sequence[float] = (1.0, 0.5, 0.0), mask_ratio: float = 0.75,
                        seed: int = 0, num_parts: Optional[int] = None,
                        titles: Optional[Sequence[str]] = None, cell: int = 112) -> None:
    """Save the SemMAE mask figure of one or more images to the PNG ``out_file``.

    Args:
        image_path: an image file, or a list of them (one row each).
        part_map_path: the part map of each image (8-bit PNG of part ids on the patch grid of
            the whole image, see ``mim_plugins.datasets.part_maps``).
        out_file: output PNG, ``len(lams) + 2`` columns of ``cell`` pixels (``save_grid``).
        lams: the λ of each masked column, in [0, 1] (1 = intra-part, 0 = inter-part).
        mask_ratio: r in (0, 1); every masked column has ``num_masked(h * w, r)`` gray patches.
        seed: row ``i`` draws every column's mask from a ``torch.Generator`` seeded with
            ``seed + i``, so within a row the columns share the part order and the random
            draws and differ only by λ.
        num_parts: K; ids ``>= K`` raise ``UserInputError``; None = no check, colours by id.
        titles: titles of the masked columns (default ``'λ=1.00'``, ...).
        cell: side in pixels of every image in the figure (images are resized to it).
    """
    images = [image_path] if isinstance(image_path, str) else list(image_path)
    maps = [part_map_path] if isinstance(part_map_path, str) else list(part_map_path)
    if len(images) != len(maps):
        raise ValueError(f'{len(images)} images but {len(maps)} part maps')
    lams = [float(lam) for lam in lams]
    titles = list(titles) if titles is not None else [f'λ={lam:.2f}' for lam in lams]
    if len(titles) != len(lams):
        raise ValueError(f'{len(titles)} titles for {len(lams)} masked columns')
    # Read and check everything before drawing: a bad input writes no figure.
    all_ids = [load_part_ids(m, img, num_parts) for img, m in zip(images, maps)]
    for path, ids in zip(maps, all_ids):
        try:
            num_masked(ids.size, mask_ratio)
        except ValueError as exc:
            raise UserInputError(f"{exc} (part map '{path}' has {ids.size} patches). Fix: use "
                                 'a mask ratio in (0, 1) that keeps at least one patch.') from None
    rows: List[List[np.ndarray]] = []
    for i, (path, ids) in enumerate(zip(images, all_ids)):
        image = np.array(Image.fromarray(read_rgb(path)).resize((cell, cell), Image.BILINEAR))
        k = int(ids.max()) + 1 if num_parts is None else num_parts
        row = [image, overlay_parts(image, ids, num_parts=k)]
        part = torch.from_numpy(ids.astype(np.int64)).flatten()
        for lam in lams:
            generator = torch.Generator().manual_seed(seed + i)
            mask = semantic_part_mask(part, mask_ratio, lam, generator=generator)
            row.append(masked_image(image, mask.view(ids.shape).numpy()))
        rows.append(row)
    all_titles = ['original', 'part map'] + titles
    pad = 4
    save_grid(rows, out_file, titles=all_titles, cell=cell, pad=pad)
