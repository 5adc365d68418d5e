"""Generated training data for a config: image files, part maps, labels, and batches made by
running the config's own train pipeline on them (so every shape, key and dtype is the real one,
whatever the algorithm: part ids for SemMAE, labels for SupMAE, two views for BEiT)."""
import copy
import os
import os.path as osp
from functools import partial
from typing import Callable, List, Optional, Sequence

import mmcv
import numpy as np
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose
from mmengine.registry import FUNCTIONS, init_default_scope

from ..datasets.part_maps import part_map_path, save_part_map

# ImageNet's typical photo; demo-size crops (MNIST's 28²) get square PNGs of the crop size.
PHOTO_SHAPE = (375, 500)
_SMALL_CROP = 64


def train_dataset_cfg(cfg: Config) -> ConfigDict:
    """The innermost dataset config of ``train_dataloader`` (through dataset wrappers)."""
    dataset = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return dataset


def crop_size(pipeline: Sequence[dict]) -> int:
    """The output side of the pipeline's first crop (``scale``/``size``/``crop_size``), else 224."""
    for transform in pipeline:
        for key in ('scale', 'size', 'crop_size'):
            value = transform.get(key)
            if isinstance(value, int):
                return value
            if isinstance(value, (tuple, list)) and value and isinstance(value[0], int):
                return max(value)
    return 224


def write_images(root: str, count: int, side: int, seed: int = 0) -> List[str]:
    """``count`` smooth random RGB images in ``root``: 375x500 JPEGs (a typical ImageNet photo)
    when ``side`` > 64, else ``side x side`` PNGs; returns their paths."""
    rng = np.random.default_rng(seed)
    shape, ext = (PHOTO_SHAPE, 'jpg') if side > _SMALL_CROP else ((side, side), 'png')
    paths = []
    for i in range(count):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # photo-like, not pure noise
        img = mmcv.imresize(coarse, shape[::-1], interpolation='bicubic')
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        path = osp.join(root, 'images', f'{i:05d}.{ext}')
        os.makedirs(osp.dirname(path), exist_ok=True)
        mmcv.imwrite(img, path)
        paths.append(path)
    return paths


def pipeline_for(cfg: Config, root: str, paths: Sequence[str], seed: int = 0) -> Compose:
    """The config's train pipeline, with ``LoadPartMap`` reading random part maps (its grid and
    number of parts) written under ``root`` for ``paths``."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))  # the transforms' registry
    pipeline = copy.deepcopy(train_dataset_cfg(cfg).pipeline)
    rng = np.random.default_rng(seed)
    for transform in pipeline:
        if transform.get('type') == 'LoadPartMap':
            transform.update(part_root=osp.join(root, 'part_maps'),
                             img_prefix=osp.join(root, 'images'))
            grid, parts = transform.get('grid', 14), transform.get('num_parts', 7)
            for path in paths:
                save_part_map(part_map_path(transform.part_root, transform.img_prefix, path),
                              rng.integers(0, parts, (grid, grid)))
    return Compose(pipeline)


def num_classes(cfg: Config) -> int:
    """Classes of the model's classification head, if any (labels for SupMAE), else 1000."""
    for key in ('cls_head', 'head'):
        head = cfg.model.get(key) or {}
        if isinstance(head, dict) and isinstance(head.get('num_classes'), int):
            return head['num_classes']
    return 1000


def samples(pipeline: Callable, paths: Sequence[str], classes: int) -> List[dict]:
    """The pipeline's output for each path, as a dataset would give it (index, label)."""
    return [pipeline(dict(img_path=p, sample_idx=i, gt_label=i % classes))
            for i, p in enumerate(paths)]


def collate_fn(cfg: Config) -> Callable:
    """The train dataloader's collate function (mmengine's default: ``pseudo_collate``)."""
    spec = dict(cfg.train_dataloader.get('collate_fn') or dict(type='pseudo_collate'))
    spec.pop('_scope_', None)
    kind = spec.pop('type')
    return partial(FUNCTIONS.get(kind) if isinstance(kind, str) else kind, **spec)


def generated_batch(cfg: Config, root: str, batch_size: int,
                    distinct: Optional[int] = None) -> dict:
    """A training batch of ``batch_size`` generated images (written under ``root``) through the
    config's train pipeline and collate function. ``distinct``: only that many images go
    through the pipeline, and copies of their samples fill the batch (a large GPU batch
    without minutes of single-core decoding; the step's work is the same)."""
    count = min(batch_size, distinct or batch_size)
    paths = write_images(root, count, crop_size(train_dataset_cfg(cfg).pipeline))
    pipeline = pipeline_for(cfg, root, paths)
    made = samples(pipeline, paths, num_classes(cfg))
    return collate_fn(cfg)([copy.deepcopy(made[i % count]) for i in range(batch_size)])
