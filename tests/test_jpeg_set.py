"""The generated JPEG benchmark set: ImageNet-like files of every kind, in the CustomDataset
layout with consistent labels, deterministic, made from scikit-image's bundled photographs."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from conftest import ROOT, run_env
from mim_plugins.datasets.jpeg_set import (SOURCE_PHOTOS, JpegSetSpec, image_size, kinds_for,
                                           photo_dir, write_jpeg_set)
from mim_plugins.utils.errors import UserInputError

SMALL = JpegSetSpec(count=8, long_side=160, large_side=400, gray=0.1, cmyk=0.1, large=0.1)


@pytest.fixture(scope='module')
def jpeg_set(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('jpegs'))
    return root, write_jpeg_set(root, SMALL)


def test_photographs_are_the_installed_packages_own_files():
    root = photo_dir()  # nothing is fetched: the files ship in the scikit-image wheel
    assert osp.isdir(root) and root.replace('\\', '/').endswith('skimage/data')
    assert all(osp.getsize(osp.join(root, p)) > 50_000 for p in SOURCE_PHOTOS)


def test_every_kind_is_written_as_a_jpeg_of_its_mode(jpeg_set):
    _, records = jpeg_set
    assert len(records) == 8
    assert {r.kind for r in records} == {'rgb', 'gray', 'cmyk', 'large'}
    for r in records:
        with Image.open(r.path) as im:
            assert im.format == 'JPEG' and im.size == r.size
            assert im.mode == {'gray': 'L', 'cmyk': 'CMYK'}.get(r.kind, 'RGB'), r
            if im.mode == 'RGB':  # 4:2:0 chroma, as most camera and ImageNet files
                assert JpegImagePlugin.get_sampling(im) == 2
        assert max(r.size) == 400 if r.kind == 'large' else 100 <= max(r.size) <= 800
        assert 85 <= r.quality <= 95


def test_layout_and_labels_agree_with_custom_dataset(jpeg_set):
    from mmpretrain.datasets import CustomDataset
    root, records = jpeg_set
    classes = open(osp.join(root, 'meta', 'classes.txt')).read().split()
    lines = [ln.split() for ln in open(osp.join(root, 'meta', 'train.txt'))]
    assert [(osp.join(root, 'train', p), int(c)) for p, c in lines] == \
        [(r.path, r.label) for r in records]
    assert all(osp.basename(osp.dirname(r.path)) == classes[r.label] for r in records)
    for ann_file in ('', 'meta/train.txt'):  # the folder scan and the annotation file
        dataset = CustomDataset(data_root=root, data_prefix='train', ann_file=ann_file,
                                with_label=True, lazy_init=False)
        got = {d['img_path']: d['gt_label'] for d in
               (dataset.get_data_info(i) for i in range(len(dataset)))}
        assert got == {r.path: r.label for r in records}, ann_file


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_ones(tmp_path, jpeg_set):
    spec = JpegSetSpec(count=3, long_side=96, large_side=200, gray=0, cmyk=0, large=0)
    a, b = (write_jpeg_set(str(tmp_path / n), spec) for n in 'ab')
    c = write_jpeg_set(str(tmp_path / 'c'), JpegSetSpec(**{**spec.__dict__, 'seed': 1}))
    read = lambda recs: [open(r.path, 'rb').read() for r in recs]  # noqa: E731
    assert read(a) == read(b)
    assert read(a) != read(c)


def test_sizes_look_like_imagenet():
    rng = np.random.default_rng(0)
    sizes = [image_size(rng, 500) for _ in range(2000)]
    share = lambda s: sum(x == s for x in sizes) / len(sizes)  # noqa: E731
    assert share((500, 375)) > 0.25 and share((375, 500)) > 0.08 and share((500, 333)) > 0.1
    assert all(min(s) >= 150 and max(s) <= 800 for s in sizes)
    kinds = kinds_for(JpegSetSpec(count=200), rng)
    assert (kinds.count('gray'), kinds.count('cmyk'), kinds.count('large')) == (10, 4, 6)


def test_bad_settings_and_a_used_folder_are_one_line_errors(tmp_path, jpeg_set):
    with pytest.raises(UserInputError, match='count 0.*Fix'):
        write_jpeg_set(str(tmp_path), JpegSetSpec(count=0))
    with pytest.raises(UserInputError, match='fractions.*Fix'):
        write_jpeg_set(str(tmp_path), JpegSetSpec(gray=0.6, cmyk=0.6))
    with pytest.raises(UserInputError, match='already holds files.*Fix'):
        write_jpeg_set(jpeg_set[0], SMALL)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_tool_writes_the_set(tmp_path):
    result = subprocess.run(
        [sys.executable, 'tools/dataset_converters/make_jpeg_set.py', str(tmp_path / 'set'),
         '--count', '3', '--long-side', '96', '--large', '0', '--cmyk', '0', '--gray', '0'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '3 JPEGs (3 rgb, 0 gray, 0 cmyk, 0 large)' in result.stdout
    assert len(open(tmp_path / 'set' / 'meta' / 'train.txt').readlines()) == 3
