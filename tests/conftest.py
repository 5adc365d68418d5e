"""Shared fixtures: tiny generated data in the real CustomDataset layout."""
import glob
import os
import os.path as osp
import sys

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def make_tiny_dataset(root: str, per_class: int = 3, size: int = 28, seed: int = 0) -> str:
    """10 classes x ``per_class`` random 28x28 images written with the embedded-data writer:
    train 20 (2/class), val 10, labelled 10 when per_class=3."""
    from mim_plugins.datasets import write_custom_dataset
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    images = rng.integers(0, 256, size=(len(labels), size, size), dtype=np.uint8)
    write_custom_dataset(root, images, labels, num_val=1, num_labelled=1, seed=seed)
    return root + '/'


def make_part_maps(img_prefix: str, part_root: str, grid: int, num_parts: int,
                   seed: int = 0) -> str:
    """A random ``grid x grid`` part map (ids ``0..num_parts-1``) for every PNG image under
    ``img_prefix``, written where ``LoadPartMap(part_root, img_prefix)`` reads it."""
    from mim_plugins.datasets.part_maps import part_map_path, save_part_map
    rng = np.random.default_rng(seed)
    for path in sorted(glob.glob(osp.join(img_prefix, '**', '*.png'), recursive=True)):
        save_part_map(part_map_path(part_root, img_prefix, path),
                      rng.integers(0, num_parts, (grid, grid)))
    return part_root


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    return make_tiny_dataset(str(tmp_path_factory.mktemp('tiny_mnist')))


def run_env() -> dict:
    """Environment for tool subprocesses: the repository importable, one thread per process."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', MIM_PYTHON=sys.executable)
    env.pop('MIM_PLUGINS_DEBUG', None)
    return env
