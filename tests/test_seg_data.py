"""The generated segmentation data sets are read by mmseg's own ADE20K / VOC dataset classes and
hold what the generator says."""
import numpy as np
import pytest
from PIL import Image

from mim_plugins.datasets.seg_data import (DIGIT_CLASSES, class_color, digit_scenes,
                                           generate_shapes, shape_alpha, voc_palette,
                                           write_ade20k)


def _load(dataset, index):
    """Image and label map of one sample through the dataset's loading transforms."""
    from mmcv.transforms import LoadImageFromFile
    from mmseg.datasets.transforms import LoadAnnotations
    results = LoadAnnotations()(LoadImageFromFile()(dataset.get_data_info(index)))
    return results['img'], results['gt_seg_map']


def test_ade20k_layout_is_read_by_mmseg_ade20k_dataset(tmp_path):
    from mmseg.datasets import ADE20KDataset
    root = str(tmp_path / 'ade')
    assert generate_shapes(root, 'ade20k', num_train=5, num_val=3) == {'train': 5, 'val': 3}
    sets = {split: ADE20KDataset(data_root=root, data_prefix=dict(
        img_path=f'images/{split}', seg_map_path=f'annotations/{split}'), pipeline=[])
        for split in ('training', 'validation')}
    assert [len(d) for d in sets.values()] == [5, 3]
    info = sets['training'].get_data_info(0)
    assert info['img_path'].endswith('images/training/ADE_train_00000001.jpg')
    assert info['seg_map_path'].endswith('annotations/training/ADE_train_00000001.png')
    assert info['reduce_zero_label']
    raw = np.array(Image.open(info['seg_map_path']))
    img, label = _load(sets['training'], 0)
    assert img.shape == (48, 64, 3) and label.shape == (48, 64)
    # raw ids: 0 = rim (ignored), 1 = background, 2..7 = objects; mmseg reduces them by one
    assert set(np.unique(raw)) <= {0, 1, 2, 3, 4, 5, 6, 7} and {1} < set(np.unique(raw))
    np.testing.assert_array_equal(label, np.where(raw == 0, 255, raw.astype(int) - 1))


def test_voc_layout_is_read_by_mmseg_pascal_voc_dataset(tmp_path):
    from mmseg.datasets import PascalVOCDataset
    root = str(tmp_path / 'voc')
    generate_shapes(root, 'voc', num_train=4, num_val=2)
    train = PascalVOCDataset(data_root=root, ann_file='ImageSets/Segmentation/train.txt',
                             data_prefix=dict(img_path='JPEGImages',
                                              seg_map_path='SegmentationClass'), pipeline=[])
    val = PascalVOCDataset(data_root=root, ann_file='ImageSets/Segmentation/val.txt',
                           data_prefix=dict(img_path='JPEGImages',
                                            seg_map_path='SegmentationClass'), pipeline=[])
    assert len(train) == 4 and len(val) == 2
    assert val.get_data_info(0)['img_path'].endswith('JPEGImages/2007_000005.jpg')
    png = Image.open(train.get_data_info(0)['seg_map_path'])
    assert png.mode == 'P' and png.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    _, label = _load(train, 0)
    ids = set(np.unique(label))
    assert 0 in ids and ids - {0} and ids <= set(range(7)) | {255}
    trainval = (tmp_path / 'voc' / 'ImageSets' / 'Segmentation' / 'trainval.txt').read_text()
    assert len(trainval.split()) == 6


def test_voc_palette_is_the_standard_one():
    palette = np.array(voc_palette()).reshape(256, 3)
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[255].tolist() == [224, 224, 192]  # border


def test_shapes_have_their_class_colour_and_ignored_rims(tmp_path):
    root = tmp_path / 'ade'
    generate_shapes(str(root), 'ade20k', num_train=6, num_val=1, size=(64, 64), seed=3)
    for i in range(1, 7):
        img = np.array(Image.open(root / 'images' / 'training' / f'ADE_train_{i:08d}.jpg'))
        raw = np.array(Image.open(root / 'annotations' / 'training' / f'ADE_train_{i:08d}.png'))
        for raw_id in set(np.unique(raw)) - {0, 1}:
            # the core of an object (not its anti-aliased rim) is its class colour (JPEG noise)
            core = np.abs(img[raw == raw_id].astype(float) - class_color(raw_id)).mean(1)
            assert np.median(core) < 20
    alpha = shape_alpha('ellipse', 20, 30)
    assert alpha[10, 15] == 1 and alpha[0, 0] == 0 and ((alpha > 0) & (alpha < 1)).any()


def test_digit_scenes_label_the_digit_pixels():
    rng = np.random.default_rng(0)
    digits = np.zeros((2, 28, 28), np.uint8)
    digits[:, 4:24, 12:16] = 255  # a bar "1"
    digits[:, 4:24, 11] = 100  # its faint edge
    scenes = digit_scenes(digits, np.array([1, 7]), num=20, size=64, rng=rng, grid=2)
    for image, label in scenes:
        assert image.shape == (64, 64, 3) and label.shape == (64, 64)
        assert (image[..., 0] == image[..., 1]).all()  # white digits on black
        ids = set(np.unique(label))
        assert ids <= {0, 2, 8} and ids & {2, 8}  # 1 + digit
        assert (image[label >= 1] == 255).all()
        # background and faint edge: ADE20K's unlabelled 0
        assert set(np.unique(image[label == 0, 0])) == {0, 100}
    assert DIGIT_CLASSES[7] == 'digit 7'
    single = digit_scenes(digits, np.array([1, 7]), num=3, size=28, rng=rng)
    assert all(set(np.unique(label)) in ({0, 2}, {0, 8}) for _, label in single)
    with pytest.raises(ValueError, match='smaller than a digit'):
        digit_scenes(digits, np.array([1, 7]), num=1, size=50, rng=rng, grid=2)


def test_writer_is_idempotent_and_rewrites_other_settings(tmp_path):
    root = tmp_path / 'ade'
    generate_shapes(str(root), 'ade20k', num_train=3, num_val=1)
    first = (root / 'images' / 'training' / 'ADE_train_00000001.jpg').stat().st_mtime_ns
    generate_shapes(str(root), 'ade20k', num_train=3, num_val=1)
    assert (root / 'images' / 'training' / 'ADE_train_00000001.jpg').stat().st_mtime_ns == first
    generate_shapes(str(root), 'ade20k', num_train=2, num_val=1)
    assert sorted(p.name for p in (root / 'images' / 'training').iterdir()) == [
        'ADE_train_00000001.jpg', 'ADE_train_00000002.jpg']
    write_ade20k(str(tmp_path / 'plain'), [], [])  # nothing to write is not an error
