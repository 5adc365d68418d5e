"""Everything the web demo shows for one request, without any UI: plain functions, testable.

``compute_views(Request(...))`` loads (and caches) the model, reads the image, draws the masks,
draws the algorithm's ``reconstruct`` (``renderers.render``), the attention of the query patch
and, when a part learner is chosen, its attention maps and parts (``learned``), and returns the
panels as uint8 images at display size, with notes saying what each shows.
"""
import functools
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..utils.errors import UserInputError
from ..visualization.attention import attention_maps, attention_overlay, patch_grid, query_attention
from ..datasets.read_image import read_rgb
from ..visualization.images import check_size, display_size, square_resize, upscale
from ..visualization.loading import load_model, need_reconstruct, normalise
from ..visualization.part_masks import masked_image, overlay_parts
from ..visualization.reconstruction import compose
from .learned import Learner, LearnedParts, learned_parts, shown_path
from .masks import draw_masks
from .parts import DEFAULT_CENTROIDS, ROOT, image_parts, stage1_available, stage1_parts
from .renderers import render

PANELS = ('input', 'masked input', 'reconstruction', 'reconstruction + visible', 'part map',
          'attention', 'learned parts')
EXAMPLES_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'examples')


# The photo job's test photos (tools/run_photo_demo.py writes them; none are shipped).
PHOTO_TEST_DIR = osp.join(ROOT, 'data', 'groceries', 'test')


def examples(photo_dir: str = PHOTO_TEST_DIR) -> Dict[str, str]:
    """``{name: path}`` of the shipped example images, sorted by name, then, once the photo job
    has written them into ``photo_dir``, the first test photo of every third class
    (``groceries_{class}``)."""
    names = sorted(n for n in os.listdir(EXAMPLES_DIR) if n.endswith('.png'))
    found = {osp.splitext(n)[0]: osp.join(EXAMPLES_DIR, n) for n in names}
    classes = sorted(os.listdir(photo_dir)) if osp.isdir(photo_dir) else []
    for name in classes[::3]:
        photos = sorted(os.listdir(osp.join(photo_dir, name)))
        if photos:
            found[f'groceries_{name}'] = osp.join(photo_dir, name, photos[0])
    return found


@dataclass
class Request:
    """One view of the demo: which image, which model, which masks."""
    image: str  # path of the image file
    config: str
    checkpoint: str
    image_name: str = ''  # how messages call the image (an upload's original name)
    strategy: str = 'random'  # see masks.STRATEGIES
    mask_ratio: float = 0.75  # hidden from the encoder
    lam: float = 0.5  # part-guided: 1 = intra-part, 0 = inter-part
    predicted_ratio: float = 0.75  # separate masks: the predicted set's ratio
    seed: int = 0
    query: Optional[Tuple[int, int]] = None  # attention query (row, col); None/off-grid: centre
    layer: int = -1  # attention layer
    centroids: Optional[str] = DEFAULT_CENTROIDS  # SemMAE stage-1 centroids, if any
    num_parts: int = 7  # K of the per-image k-means fallback
    learner: Optional[Learner] = None  # a SemMAE part learner; None: k-means parts (baseline)


@dataclass
class Views:
    panels: Dict[str, Optional[np.ndarray]]  # PANELS -> (S, S, 3) uint8, None = not shown
    notes: List[str] = field(default_factory=list)
    grid: Tuple[int, int] = (0, 0)
    query: Tuple[int, int] = (0, 0)


@functools.lru_cache(maxsize=3)
def _cached_model(config: str, checkpoint: str, stamp: Tuple[float, float]) -> nn.Module:
    return load_model(config, checkpoint)[0]


def get_model(config: str, checkpoint: str) -> nn.Module:
    """``load_model``, cached while neither file changes."""
    for path in (config, checkpoint):
        if not osp.isfile(path):
            what = 'Config' if path == config else 'Checkpoint'
            raise UserInputError(f"{what} file '{path}' does not exist. Fix: check the path.")
    stamp = (os.stat(config).st_mtime, os.stat(checkpoint).st_mtime)
    return _cached_model(osp.abspath(config), osp.abspath(checkpoint), stamp)


def _part_map(req: Request, model: nn.Module, image: np.ndarray, inputs: torch.Tensor,
              grid: Tuple[int, int], learned: Optional[LearnedParts]
              ) -> Tuple[np.ndarray, int, str]:
    """(part ids (h, w), K, a note saying how they were made): the learner's parts when one is
    chosen, else the k-means baseline's."""
    if learned is not None:
        k = learned.maps.shape[0]
        return learned.part_ids, k, ('Part map: the part learner\'s argmax parts (the '
                                     '"learned parts" panel); the masks follow them.')
    why_not = stage1_available(req.centroids)
    if why_not is None:
        ids = stage1_parts(image, req.centroids, grid)
        k = int(torch.load(req.centroids, map_location='cpu',
                           weights_only=True)['num_parts'])
        return ids, k, (f'Part map: k-means baseline, SemMAE stage-1 parts, each patch assigned '
                        f'to the nearest of the {k} centroids in {shown_path(req.centroids)}.')
    ids = image_parts(model.backbone, inputs, grid, req.num_parts, seed=req.seed)
    return ids, req.num_parts, (
        f'Part map: k-means baseline, per-image k-means ({req.num_parts} parts) of this model\'s '
        f'last-layer patch features, because {why_not}; part ids mean nothing across images.')


def compute_views(req: Request) -> Views:
    """All panels of one request; raises ``UserInputError`` with the fix for a bad input."""
    model = get_model(req.config, req.checkpoint)
    need_reconstruct(model, 'The demo')
    backbone = model.backbone
    grid = patch_grid(backbone)
    size = backbone.patch_embed.init_input_size[0]
    name = f"Image '{req.image_name or osp.basename(req.image)}'"
    rgb = read_rgb(req.image, name=req.image_name or osp.basename(req.image))
    check_size(rgb, size, size // grid[0], name=name)
    image = square_resize(rgb, size)
    inputs = normalise(model.data_preprocessor, torch.from_numpy(image[None]))
    show = display_size(size)
    big = upscale(image, show)
    notes = [f'{type(model).__name__} on {size}x{size} images, {grid[0]}x{grid[1]} patches.']

    part_ids = None
    panels: Dict[str, Optional[np.ndarray]] = dict.fromkeys(PANELS)
    learned = learned_parts(req.learner, rgb, grid) if req.learner else None
    if learned is not None:
        panels['learned parts'] = learned.panel
        notes.append(learned.note)
    if req.strategy == 'part-guided':
        part_ids, k, note = _part_map(req, model, image, inputs, grid, learned)
        panels['part map'] = overlay_parts(big, part_ids, num_parts=k)
        notes.append(note)
    hidden, predicted = draw_masks(req.strategy, grid, req.mask_ratio, req.seed, req.lam,
                                   req.predicted_ratio, part_ids)
    hidden_2d, predicted_2d = hidden.view(grid).numpy(), predicted.view(grid).numpy()
    notes.append(f'Masks ({req.strategy}, seed {req.seed}): {int(hidden.sum())} of '
                 f'{hidden.numel()} patches hidden from the encoder, {int(predicted.sum())} '
                 'predicted' + (', drawn independently.' if req.strategy == 'separate' else '.'))

    rendered = render(model, inputs, hidden, predicted)
    notes.append(f'Reconstruction: predicted {rendered.what}; "reconstruction + visible" keeps '
                 'the predicted patches and pastes the visible ones.')
    if rendered.note:
        notes.append(rendered.note)
    panels['input'] = big
    panels['masked input'] = masked_image(big, hidden_2d)
    panels['reconstruction'] = upscale(rendered.prediction, show)
    panels['reconstruction + visible'] = compose(upscale(rendered.prediction, show),
                                                 upscale(rendered.reference, show),
                                                 hidden_2d, predicted_2d)

    query = req.query
    if query is None or not (0 <= query[0] < grid[0] and 0 <= query[1] < grid[1]):
        query = (grid[0] // 2, grid[1] // 2)  # none yet, or one clicked on another model's grid
    attn = attention_maps(backbone, inputs, req.layer)
    values = query_attention(attn, query, grid)[0].numpy()
    panels['attention'] = attention_overlay(big, values, query)
    layer = req.layer % len(backbone.layers)
    notes.append(f'Attention: layer {layer} of the encoder on the whole image, query patch '
                 f'(row {query[0]}, col {query[1]}) in red, mean over heads; click the input '
                 'to move it.')
    return Views(panels, notes, tuple(grid), tuple(query))
