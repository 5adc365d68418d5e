"""The learned part learner's attention maps and argmax parts over images: the paper's
Figure 1 panels (e) and (f). One row per image, drawn by :func:`learned_part_row` for the CLI
figure (tools/visualization/vis_learned_parts.py) and the web demo alike."""
from typing import List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from .attention import heatmap
from .images import save_grid
from .part_masks import colorize_parts, overlay_parts


def learned_part_titles(num_parts: int) -> List[str]:
    """The column titles of :func:`learned_part_row`."""
    return ['image'] + [f'map {n}' for n in range(num_parts)] + ['parts', 'overlay']


def learned_part_row(image: np.ndarray, maps: np.ndarray) -> List[np.ndarray]:
    """``image`` (S, S, 3) uint8 and the learner's maps on it (N, h, w) -> [image, the N maps
    as heat maps (each min-max scaled), the argmax parts, their overlay on the image], each
    (S, S, 3) uint8. Part n is ``PALETTE[n]`` in every image."""
    side, num_parts = image.shape[0], maps.shape[0]
    ids = maps.argmax(0).astype(np.uint8)
    colours = np.array(Image.fromarray(colorize_parts(ids, num_parts))
                       .resize((side, side), Image.NEAREST))
    return ([image] + [heatmap(m, side, 'viridis') for m in maps]
            + [colours, overlay_parts(image, ids, num_parts=num_parts)])


def learned_part_rows(config: str, checkpoint: str, image_paths: Sequence[str],
                      cell: int = 112) -> Tuple[List[List[np.ndarray]], np.ndarray, np.ndarray]:
    """Per image one :func:`learned_part_row`, the image resized to ``cell`` pixels. Returns
    (rows, maps (B, N, h, w), part ids (B, h, w))."""
    from ..parts.learned_parts import build_learner
    from ..parts.part_learner import load_image

    model, norm = build_learner(config, checkpoint)
    size = tuple(model.backbone.patch_embed.init_input_size)
    batch = torch.stack([load_image(p, size, **norm) for p in image_paths])
    with torch.no_grad():
        maps = model(batch).numpy()
    rows = []
    for path, image_maps in zip(image_paths, maps):
        with Image.open(path) as img:
            image = np.array(img.convert('RGB').resize((cell, cell), Image.BILINEAR))
        rows.append(learned_part_row(image, image_maps))
    return rows, maps, maps.argmax(1).astype(np.uint8)


def render_learned_parts(config: str, checkpoint: str, image_paths: Sequence[str], out: str,
                         cell: int = 112) -> np.ndarray:
    """Save the rows of ``learned_part_rows`` as a PNG grid at ``out``; returns the part ids."""
    rows, maps, ids = learned_part_rows(config, checkpoint, image_paths, cell)
    save_grid(rows, out, titles=learned_part_titles(maps.shape[1]), cell=cell)
    return ids
