"""Label-map transforms: the label check's errors, crops and resizes that keep image and labels
aligned; a bad label PNG ends a real training run with one clear line."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.datasets.seg_data import generate_shapes
from mim_plugins.datasets.seg_transforms import (CheckSegLabels, RandomResizedCropWithSegMap,
                                                 ResizeSegMap)
from mim_plugins.utils.errors import UserInputError

MAE_ADE = 'configs_seg/mae/mae-base_upernet_8xb2-160k_ade20k-512x512.py'


def _results(label, shape=None, reduce=False):
    return dict(gt_seg_map=np.asarray(label, np.uint8), ori_shape=shape or np.shape(label)[:2],
                seg_map_path='ann/x.png', img_path='img/x.jpg', reduce_zero_label=reduce)


def test_valid_labels_pass_unchanged():
    label = np.array([[0, 20], [255, 3]])
    results = CheckSegLabels(num_classes=21)(_results(label))
    np.testing.assert_array_equal(results['gt_seg_map'], label)


@pytest.mark.parametrize('label,reduce,raw,valid', [
    ([[0, 21], [22, 255]], False, '[21, 22]', '0..20'),
    # reduce_zero_label stored PNG value k as k - 1: the message names the PNG's value
    ([[255, 150], [3, 200]], True, '[151, 201]', '0 (unlabelled) and 1..150'),
])
def test_unknown_class_id_is_named_with_the_file(label, reduce, raw, valid):
    num_classes = 150 if reduce else 21
    with pytest.raises(UserInputError) as info:
        CheckSegLabels(num_classes)(_results(label, reduce=reduce))
    message = str(info.value)
    assert "Label map 'ann/x.png' holds class id(s) " + raw in message
    assert valid in message and 'Fix:' in message


def test_label_map_of_another_size_is_named_with_both_sizes():
    with pytest.raises(UserInputError, match=r"'ann/x.png' is 3x2 \(WxH\) but its image "
                                             r"'img/x.jpg' is 4x2.*Fix:"):
        CheckSegLabels(21)(_results(np.zeros((2, 3)), shape=(2, 4)))


def test_rgb_label_map_is_refused():
    with pytest.raises(UserInputError, match=r'shape \(2, 2, 3\), not one class id per pixel'):
        CheckSegLabels(21)(_results(np.zeros((2, 2, 3))))


def test_random_resized_crop_keeps_image_and_labels_aligned():
    np.random.seed(0)
    # the label is a function of the pixel colour: after any crop and resize they must agree
    label = np.random.randint(0, 4, (60, 80)).repeat(4, 0).repeat(4, 1)
    img = np.stack([label * 60] * 3, -1).astype(np.uint8)
    crop = RandomResizedCropWithSegMap(scale=(48, 40), crop_ratio_range=(0.3, 0.6),
                                       interpolation='nearest')
    for _ in range(5):
        out = crop(dict(img=img.copy(), gt_seg_map=label.astype(np.uint8).copy(),
                        seg_fields=['gt_seg_map']))
        assert out['img'].shape == (48, 40, 3) and out['img_shape'] == (48, 40)
        assert out['gt_seg_map'].shape == (48, 40)
        np.testing.assert_array_equal(out['img'][..., 0], out['gt_seg_map'] * 60)


def test_resize_seg_map_alone_and_as_original_shape():
    label = np.arange(16, dtype=np.uint8).reshape(4, 4).repeat(25, 0).repeat(25, 1)  # 100x100
    out = ResizeSegMap((4, 4))(dict(gt_seg_map=label, ori_shape=(100, 100), img=np.zeros(3)))
    np.testing.assert_array_equal(out['gt_seg_map'], np.arange(16).reshape(4, 4))
    assert out['ori_shape'] == (100, 100)
    out = ResizeSegMap((8, 6), as_ori_shape=True)(dict(gt_seg_map=label, ori_shape=(100, 100)))
    assert out['gt_seg_map'].shape == (8, 6) and out['ori_shape'] == (8, 6)


def _bad_ade20k(tmp_path, defect):
    """A generated ADE20K set whose second train label PNG has ``defect``; returns root, PNG."""
    root = tmp_path / 'ade'
    generate_shapes(str(root), 'ade20k', num_train=2, num_val=1)
    png = root / 'annotations' / 'training' / 'ADE_train_00000002.png'
    label = np.array(Image.open(png))
    if defect == 'unknown id':
        label[5, 5] = 201
    else:
        label = np.array(Image.fromarray(label).resize((32, 24), Image.NEAREST))
    Image.fromarray(label).save(png)
    return root, png


def test_label_png_of_wrong_size_fails_in_the_config_pipeline(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS
    root, png = _bad_ade20k(tmp_path, 'wrong size')
    cfg = Config.fromfile(f'{ROOT}/{MAE_ADE}')
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, data_root=str(root)))
    assert dataset[0]['inputs'].shape[0] == 3
    with pytest.raises(UserInputError, match=f"Label map '{png}' is 32x24 \\(WxH\\) but its "
                                             "image .*ADE_train_00000002.jpg' is 64x48"):
        dataset[1]


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_bad_label_png_stops_training_with_one_clear_line(tmp_path):
    root, png = _bad_ade20k(tmp_path, 'unknown id')
    result = subprocess.run(
        [sys.executable, 'tools/train.py', MAE_ADE, '--work-dir', str(tmp_path / 'work'),
         '--no-validate', '--cfg-options', f'train_dataloader.dataset.data_root={root}',
         'train_dataloader.num_workers=1', 'train_dataloader.sampler.shuffle=False',
         'model.backbone.init_cfg=None'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error == (f"ERROR: Label map '{png}' holds class id(s) [201], which the data set "
                     'does not have (valid pixel values: 0 (unlabelled) and 1..150, and 255 = '
                     'ignored). Fix: correct the label map, or give the data set its real classes '
                     '(metainfo) and the heads the same num_classes.')
    assert 'Traceback' not in result.stderr
