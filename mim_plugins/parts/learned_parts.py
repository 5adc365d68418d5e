"""SemMAE stage-1 inference with the learned part learner: one part map per image, written
where and how stage 2 reads it (``mim_plugins.datasets.part_maps``), as the k-means baseline
(``part_learner.learn_parts``) writes them: images sharded by rank (``i % world == rank`` of the
sorted list), each map written under a temporary name then renamed (atomic), images whose map
exists skipped (resume), unreadable images skipped and listed in
``{part_root}/part_learning.json``.

A part root belongs to one learner: rerunning with another config or checkpoint into the same
folder is refused (its old maps would otherwise be kept as if they were the new learner's).
"""
import json
import os.path as osp
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.utils import ProgressBar
from mmpretrain.registry import MODELS

from ..datasets.part_maps import part_map_path
from ..engine.safe_checkpoints import read_checkpoint
from ..utils.errors import MissingFileError, UserInputError
from .features import _find_norm
from .part_learner import (SUMMARY_NAME, ImageList, _dist_info, _loader, finish_summary,
                           list_images, write_part_map)
from .semmae_part_learner import SemMAEPartLearner


def require_learner_files(config: str, checkpoint: str) -> None:
    """A ``MissingFileError`` naming the fix when the learner's config or checkpoint is absent."""
    for path, what in ((config, 'config'), (checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise MissingFileError(f"Part learner {what} '{path}' does not exist. Fix: pass the "
                                   'config trained with tools/train.py and its epoch_N.pth.')


def _learner_state(checkpoint: str, own: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The state dict of ``checkpoint``, refused unless it holds the learner's own weights
    (``own`` without the frozen ViT): a pretraining checkpoint has the ViT only."""
    try:
        state = read_checkpoint(checkpoint)
    except Exception as exc:  # noqa: BLE001  (truncated file, not a torch file, a pickle, ...)
        raise UserInputError(f"Checkpoint '{checkpoint}' could not be read "
                             f'({type(exc).__name__}: {exc}). Fix: pass a complete .pth file '
                             'written by tools/train.py.') from None
    state = state.get('state_dict', state) if isinstance(state, dict) else state
    learned = [k for k in own if not k.startswith('backbone.')]
    if not isinstance(state, dict) or not any(k in state for k in learned):
        raise UserInputError(
            f"Checkpoint '{checkpoint}' is not a part learner's: it has none of the "
            "SemMAEPartLearner's own weights (embed.*, decoder.*), as a pretraining "
            'checkpoint has not. Fix: pass the epoch_N.pth that tools/train.py '
            'wrote for a configs/semmae/semmae-parts_*.py config (docs/semmae_stage1.md).')
    return state


def build_learner(config: str, checkpoint: str,
                  device: str = 'cpu') -> Tuple[SemMAEPartLearner, Dict]:
    """The trained learner of ``config`` with ``checkpoint``'s weights (its frozen ViT included,
    so the ViT's own checkpoint is not needed), in eval mode. Returns (model, normalisation
    dict(mean, std, to_rgb) of the config's data preprocessor). Raises ``UserInputError``
    naming the fix for a missing file, a config of another model, or a checkpoint that is not
    this learner's; the checkpoint is read without running code (``read_checkpoint``)."""
    require_learner_files(config, checkpoint)
    try:
        cfg = Config.fromfile(config)
    except Exception as exc:  # noqa: BLE001  (syntax errors, missing _base_, ...)
        raise UserInputError(f"Config file '{config}' could not be read: "
                             f'{type(exc).__name__}: {exc}. Fix: pass a valid config.') from None
    model_type = cfg.get('model', {}).get('type')
    if model_type != 'SemMAEPartLearner':
        raise UserInputError(f"Config '{config}' trains {model_type!r}, not a "
                             'SemMAEPartLearner. Fix: pass configs/semmae/semmae-parts_*.py or '
                             "its work dir's dump (k-means parts need no learner: "
                             'tools/part_learning/learn_parts.py).')
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(model_cfg.backbone, init_cfg=None)  # the checkpoint holds the ViT
    model = MODELS.build(model_cfg)
    state = _learner_state(checkpoint, model.state_dict())
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).split('\n\t')[1] if '\n\t' in str(exc) else str(exc)
        raise UserInputError(f"Checkpoint '{checkpoint}' does not fit the part learner of "
                             f"'{config}': {first.strip()} Fix: pass the config the checkpoint "
                             'was trained with (its work dir holds the dump).') from None
    return model.to(device).eval(), _find_norm(cfg)


def learned_part_ids(model: SemMAEPartLearner, images: torch.Tensor,
                     grid: Tuple[int, int]) -> np.ndarray:
    """(B, 3, H, W) normalised images -> (B, gh, gw) uint8 part ids on the CPU: what
    :func:`learned_parts` writes for each image (the k-means tool's is ``part_ids_of``)."""
    return model.segment(images, grid).cpu().numpy().astype(np.uint8)


def check_owner(part_root: str, config: str, checkpoint: str) -> None:
    """Refuse a part root whose maps another learner wrote (see the module docstring)."""
    summary = osp.join(part_root, SUMMARY_NAME)
    if not osp.isfile(summary):
        return
    with open(summary) as f:
        old = json.load(f)
    # the same files reached through another path (a symlinked work dir) are the same learner
    mine = (osp.realpath(config), osp.realpath(checkpoint))
    theirs = (osp.realpath(old.get('config', '')), osp.realpath(old.get('checkpoint', '')))
    if old.get('method') != 'learned' or theirs != mine:
        raise UserInputError(
            f"Part root '{part_root}' holds maps of another part learner "
            f"({old.get('method', 'k-means')}: {old.get('checkpoint')}). Fix: pass a new "
            '--part-root, or delete that folder to replace its maps.')


def write_maps(segment: Callable[[torch.Tensor], np.ndarray], dataset: ImageList,
               maps: Sequence[str], batch_size: int, num_workers: int = 0,
               device: str = 'cpu', progress: bool = True) -> Dict:
    """This rank's shard of ``dataset``: ``segment(images (B, 3, H, W)) -> (B, g, g) uint8``
    written atomically to ``maps[i]``, skipping maps that exist. Returns dict(written, skipped,
    corrupt=[dict(path, error)])."""
    rank, world = _dist_info()
    # Shard BEFORE looking at which maps exist: another rank may already be writing its own.
    mine = range(rank, len(maps), world)
    shard = [i for i in mine if not osp.isfile(maps[i])]
    written, corrupt = 0, []
    bar = ProgressBar(len(shard)) if progress and rank == 0 and shard else None
    for indices, images, bad in _loader(dataset, shard, batch_size, num_workers):
        if images is not None:
            for i, ids in zip(indices, segment(images.to(device))):
                write_part_map(maps[i], ids)
            written += len(indices)
        corrupt += [dict(path=dataset.paths[i], error=err) for i, err in bad]
        if bar is not None:
            bar.update(len(indices) + len(bad))
    if bar is not None:
        print(flush=True)
    return dict(written=written, skipped=len(mine) - len(shard), corrupt=corrupt)


def learned_parts(config: str, checkpoint: str, data_root: str, data_prefix: str = '',
                  ann_file: Optional[str] = None, part_root: Optional[str] = None,
                  grid: Optional[int] = None, batch_size: int = 64, num_workers: int = 0,
                  progress: bool = True) -> Dict:
    """Write the learned learner's part map of every image of ``data_root/data_prefix`` under
    ``part_root`` (default ``data_root/part_maps/data_prefix``); ``grid`` defaults to the ViT's
    token grid. Returns the summary that rank 0 writes to ``{part_root}/part_learning.json``."""
    start = time.time()
    rank, world = _dist_info()
    device = f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available() else 'cpu'
    img_prefix = osp.join(data_root, data_prefix) if data_prefix else data_root
    part_root = part_root or osp.join(data_root, 'part_maps', data_prefix)
    model, norm = build_learner(config, checkpoint, device)
    check_owner(part_root, config, checkpoint)
    paths = list_images(img_prefix, ann_file, exclude=part_root)
    grid_hw = (grid, grid) if grid else model.grid
    if grid_hw[0] != grid_hw[1]:
        raise UserInputError(f'The ViT has a {grid_hw} token grid; part maps are square. Fix: '
                             'pass --grid, the side of the masking patch grid.')
    dataset = ImageList(paths, tuple(model.backbone.patch_embed.init_input_size), norm)

    def segment(images: torch.Tensor) -> np.ndarray:
        return learned_part_ids(model, images, grid_hw)

    maps = [part_map_path(part_root, img_prefix, p) for p in paths]
    mine = write_maps(segment, dataset, maps, batch_size, num_workers, device, progress)
    return finish_summary(mine, world, rank, start, method='learned',
                          config=config, checkpoint=checkpoint, img_prefix=img_prefix,
                          part_root=part_root, num_parts=model.num_parts, grid=list(grid_hw),
                          images=len(paths))
