"""The learned part learner (SemMAE stage 1, docs/semmae_stage1.md) in the web demo.

Which learner the page chose (one found under work_dirs/, or typed paths inside the allowed
folders), its N attention maps and their argmax over the image (the paper's Figure 1 (e)/(f),
drawn by the rows of tools/visualization/vis_learned_parts.py), and those argmax parts on the
masking grid, which the part-guided strategy then masks by. Without a learner the part-guided
strategy keeps its k-means parts (``parts``), the baseline.
"""
import functools
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..parts.learned_parts import build_learner, require_learner_files
from ..parts.part_learner import normalise_image
from ..utils.errors import UserInputError
from ..visualization.images import grid_image, square_resize
from ..visualization.learned_parts import learned_part_row, learned_part_titles
from .checkpoints import ROOT

KMEANS = 'k-means (baseline)'  # the dropdown's choice of no learner
CELL = 112  # pixels per picture of the panel
NO_LEARNER = ('No part learner found under work_dirs/. Fix: train one (docs/semmae_stage1.md: '
              'tools/train.py configs/semmae/semmae-parts_*.py --work-dir '
              'work_dirs/semmae_parts) and restart the demo, or type its config and checkpoint '
              'under "Other part learner".')

Learner = Tuple[str, str]  # (config, checkpoint)
Allow = Callable[[str, str], str]  # (typed path, what it is) -> resolved path, else refused


def choose_learner(learners: Dict[str, Learner], label: Optional[str], config: str,
                   checkpoint: str, allowed: Allow) -> Optional[Learner]:
    """The chosen learner, or None for the k-means baseline: the typed paths when given (both,
    each passed through ``allowed``, which refuses a path outside the allowed folders), else
    the list's ``label``."""
    config, checkpoint = (config or '').strip(), (checkpoint or '').strip()
    if config or checkpoint:
        if not (config and checkpoint):
            raise UserInputError('"Other part learner" needs both a config file and a '
                                 'checkpoint file. Fix: fill in both, or clear both to use the '
                                 'list.')
        return (allowed(config, 'part learner config'),
                allowed(checkpoint, 'part learner checkpoint'))
    if not label or label == KMEANS:
        return None
    if label in learners:
        return learners[label]
    raise UserInputError(f"No part learner '{label}' on this server's list. Fix: choose one of "
                         f'the list or "{KMEANS}". ' + ('' if learners else NO_LEARNER))


@functools.lru_cache(maxsize=2)
def _cached_learner(config: str, checkpoint: str,
                    stamp: Tuple[float, float]) -> Tuple[nn.Module, Dict]:
    return build_learner(config, checkpoint)


def get_learner(config: str, checkpoint: str) -> Tuple[nn.Module, Dict]:
    """``build_learner`` (model, normalisation), cached while neither file changes."""
    require_learner_files(config, checkpoint)
    stamp = (os.stat(config).st_mtime, os.stat(checkpoint).st_mtime)
    return _cached_learner(osp.abspath(config), osp.abspath(checkpoint), stamp)


@dataclass
class LearnedParts:
    """What one learner says about one image."""
    maps: np.ndarray  # (N, h, w) float32: the attention maps on the learner's token grid
    part_ids: np.ndarray  # (gh, gw) uint8: their argmax on the masking grid
    panel: np.ndarray  # (14 + CELL + 8, (N + 3) * (CELL + 4) + 4, 3) uint8: the figure's row
    note: str


def shown_path(path: str) -> str:
    """A file as the page names it: the repo's own files by their usual (relative) names."""
    where = osp.abspath(path)
    return osp.relpath(where, ROOT) if where.startswith(ROOT + osp.sep) else path


@torch.no_grad()
def learned_parts(learner: Learner, rgb: np.ndarray, grid: Tuple[int, int]) -> LearnedParts:
    """The learner's maps and parts of ``rgb`` (H, W, 3) uint8: it sees the central square
    crop that the demo's other panels show, resized to its own input size. ``grid`` (gh, gw):
    the masking grid, on which ``SemMAEPartLearner.segment`` takes the argmax (resizing the
    maps when its token grid differs, as stage-1 inference's ``--grid`` does)."""
    model, norm = get_learner(*learner)
    size = tuple(model.backbone.patch_embed.init_input_size)
    crop = Image.fromarray(square_resize(rgb, max(size)))
    inputs = normalise_image(crop, size, **norm)[None]
    maps = model(inputs)[0].numpy()
    part_ids = model.segment(inputs, grid)[0].numpy().astype(np.uint8)
    num_parts, (h, w) = maps.shape[0], maps.shape[1:]
    panel = grid_image([learned_part_row(square_resize(rgb, CELL), maps)],
                       learned_part_titles(num_parts), cell=CELL)
    note = (f'Learned parts: the {num_parts} attention maps of the part learner '
            f'{shown_path(learner[1])} over this image ({h}x{w} tokens, each min-max scaled) and '
            'their argmax; a part has the same colour in every image.')
    if (h, w) != tuple(grid):
        note += (f' Part-guided masks take the argmax of the maps resized (bilinear) to the '
                 f'{grid[0]}x{grid[1]} masking grid.')
    return LearnedParts(maps, part_ids, panel, note)
