import os
import os.path as osp

import numpy as np
import pytest

from mim_plugins.datasets.embedded import (load_mnist5k, split_indices,
                                           write_custom_dataset)


def test_split_is_balanced_disjoint_and_deterministic():
    labels = np.repeat(np.arange(4), 10)
    a = split_indices(labels, num_val=3, num_labelled=2, seed=1)
    b = split_indices(labels, num_val=3, num_labelled=2, seed=1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not set(a['train']) & set(a['val'])
    assert set(a['train']) | set(a['val']) == set(range(40))
    assert set(a['labelled']) <= set(a['train'])
    assert np.bincount(labels[a['val']]).tolist() == [3] * 4
    assert np.bincount(labels[a['labelled']]).tolist() == [2] * 4


def test_split_rejects_too_few_images():
    with pytest.raises(ValueError, match='class 0 has 2 images'):
        split_indices(np.zeros(2, dtype=int), num_val=2, num_labelled=1)


def test_writer_layout_is_a_real_custom_dataset(tmp_path):
    from mmpretrain.datasets import CustomDataset
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 5)
    images = rng.integers(0, 256, (15, 28, 28), dtype=np.uint8)
    counts = write_custom_dataset(str(tmp_path), images, labels, num_val=2, num_labelled=1)
    assert counts == {'train': 9, 'val': 6, 'labelled': 3}

    train = CustomDataset(data_root=str(tmp_path), data_prefix='train', with_label=False)
    assert len(train) == 9
    val = CustomDataset(data_root=str(tmp_path), data_prefix='val', ann_file='meta/val.txt')
    assert len(val) == 6 and sorted(val.get_gt_labels().tolist()) == [0, 0, 1, 1, 2, 2]
    lab = CustomDataset(data_root=str(tmp_path), data_prefix='train',
                        ann_file='meta/train_labelled.txt')
    assert len(lab) == 3
    # the pixels written are the pixels given, label in the folder name
    info = lab.get_data_info(0)
    index = int(osp.basename(info['img_path']).split('.')[0])
    from PIL import Image
    np.testing.assert_array_equal(np.array(Image.open(info['img_path'])), images[index])
    assert info['gt_label'] == labels[index]


def test_writer_is_idempotent_and_rewrites_on_new_settings(tmp_path):
    labels = np.repeat(np.arange(2), 6)
    images = np.zeros((12, 28, 28), dtype=np.uint8)
    write_custom_dataset(str(tmp_path), images, labels, num_val=2, num_labelled=1)
    stamp = osp.getmtime(osp.join(tmp_path, 'meta', 'val.txt'))
    assert write_custom_dataset(str(tmp_path), images, labels, num_val=2,
                                num_labelled=1)['val'] == 4
    assert osp.getmtime(osp.join(tmp_path, 'meta', 'val.txt')) == stamp
    counts = write_custom_dataset(str(tmp_path), images, labels, num_val=3, num_labelled=1)
    assert counts['val'] == 6
    n_files = sum(len(f) for _, _, f in os.walk(osp.join(tmp_path, 'train')))
    assert n_files == 6  # no file of the older split is left behind


def test_embedded_mnist5k_is_real_mnist():
    images, labels = load_mnist5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    # MNIST digits: dark background, bright strokes in the middle
    assert images[:, :2].mean() < 1 and images[:, 10:18, 10:18].mean() > 60
