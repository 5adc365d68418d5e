"""The learned part learner's attention maps and argmax parts over images: the paper's
Figure 1 panels (e) and (f)."""
from typing import List, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from .attention import heatmap
from .images import save_grid
from .part_masks import colorize_parts, overlay_parts


def learned_part_rows(config: str, checkpoint: str, image_paths: Sequence[str],
                      cell: int = 112) -> Tuple[List[List[np.ndarray]], np.ndarray, np.ndarray]:
    """Per image one row: image | the N attention maps (each min-max scaled) | argmax parts |
    overlay. Returns (rows, maps (B, N, h, w), part ids (B, h, w))."""
    from ..parts.learned_parts import build_learner
    from ..parts.part_learner import load_image

    model, norm = build_learner(config, checkpoint)
    size = tuple(model.backbone.patch_embed.init_input_size)
    batch = torch.stack([load_image(p, size, **norm) for p in image_paths])
    with torch.no_grad():
        maps = model(batch).numpy()
    ids = maps.argmax(1).astype(np.uint8)
    rows = []
    for path, image_maps, part_ids in zip(image_paths, maps, ids):
        with Image.open(path) as img:
            image = np.array(img.convert('RGB').resize((cell, cell), Image.BILINEAR))
        colours = np.array(Image.fromarray(colorize_parts(part_ids, model.num_parts))
                           .resize((cell, cell), Image.NEAREST))
        rows.append([image] + [heatmap(m, cell, 'viridis') for m in image_maps]
                    + [colours, overlay_parts(image, part_ids, num_parts=model.num_parts)])
    return rows, maps, ids


def render_learned_parts(config: str, checkpoint: str, image_paths: Sequence[str], out: str,
                         cell: int = 112) -> np.ndarray:
    """Save the rows of ``learned_part_rows`` as a PNG grid at ``out``; returns the part ids."""
    rows, maps, ids = learned_part_rows(config, checkpoint, image_paths, cell)
    titles = ['image'] + [f'map {n}' for n in range(maps.shape[1])] + ['parts', 'overlay']
    save_grid(rows, out, titles=titles, cell=cell)
    return ids
