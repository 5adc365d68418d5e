"""Crop-aware decoding against the stock transforms it replaces: the same boxes for the same
seed, the same pixels when decoding whole, a close output when decoding at a reduced DCT scale,
part maps and BEiT's two views that follow the crop, each family's switch config, bad files."""
import io
import json
import math
import os.path as osp
import struct
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.benchmark.pipeline_compare import (PSNR, build_pipeline, recorded_boxes,
                                                    run)
from mim_plugins.datasets import crop_decode
from mim_plugins.datasets.crop_decode import (UnreadableImageError, decode, draft_scale,
                                              load_cropped, read_header)
from mim_plugins.datasets.jpeg_set import JpegSetSpec, write_jpeg_set
from mim_plugins.datasets.part_maps import part_map_path, save_part_map

MAE_CROP = dict(scale=224, crop_ratio_range=(0.2, 1.0), backend='pillow',
                interpolation='bicubic')
BEIT_CROP = dict(size=224, second_size=112, interpolation='bicubic',
                 second_interpolation='lanczos', scale=(0.08, 1.0))
FAMILIES = {  # the switch config of each pretraining family, and the config it switches
    'mae': ('configs/mae/crop_decode/mae_vit-base-p16_8xb512-cropdecode-coslr-800e_in1k.py',
            'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py'),
    'supmae': ('configs/supmae/crop_decode/'
               'supmae_vit-base-p16_8xb512-cropdecode-coslr-400e_in1k.py',
               'configs/supmae/supmae_vit-base-p16_8xb512-coslr-400e_in1k.py'),
    'semmae': ('configs/semmae/crop_decode/'
               'semmae_vit-base-p16_8xb256-cropdecode-coslr-800e_in1k.py',
               'configs/semmae/semmae_vit-base-p16_8xb256-coslr-800e_in1k.py'),
    'beit': ('configs/beit/crop_decode/beit_vit-base-p16_8xb256-cropdecode-coslr-300e_in1k.py',
             'configs/beit/beit_vit-base-p16_8xb256-coslr-300e_in1k.py'),
    'maskfeat': ('configs/maskfeat/crop_decode/'
                 'maskfeat_vit-base-p16_8xb256-cropdecode-coslr-300e_in1k.py',
                 'configs/maskfeat/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py'),
}


@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    """12 JPEGs of every kind (RGB, grayscale, CMYK, 1400-px ones that decode at 1/2 or 1/4)."""
    root = str(tmp_path_factory.mktemp('crop_decode'))
    spec = JpegSetSpec(count=12, large_side=1400, gray=0.1, cmyk=0.1, large=0.25)
    return [r.path for r in write_jpeg_set(root, spec)]


def pipe(*transforms: dict) -> Compose:
    init_default_scope('mmpretrain')
    return Compose([dict(t) for t in transforms])


def load(**kwargs) -> dict:
    return dict(type='LoadImageFromFile', **kwargs)


def pixels(outputs) -> list:
    """Every output view as a numpy array, in order."""
    return [t.numpy() for views in outputs for t in views]


def test_draft_scale_is_the_largest_that_keeps_the_crop_as_large_as_the_output():
    assert draft_scale((448, 448), (224, 224)) == 2
    assert draft_scale((447, 1000), (224, 224)) == 1  # one side too short
    assert draft_scale((1000, 2000), (224, 224)) == 4
    assert draft_scale((1792, 1800), (224, 224)) == 8
    assert draft_scale((1792, 1800), (224, 224), max_scale=2) == 2
    assert draft_scale((300, 300), (112, 112)) == 2
    assert draft_scale((100, 100), (224, 224)) == 1  # an upscaled crop decodes whole


@pytest.mark.parametrize('ratio', [(0.2, 1.0), (0.08, 1.0), (0.5, 1.0)])
def test_same_seed_draws_the_same_boxes_as_the_stock_transform(paths, ratio):
    stock = pipe(load(), dict(MAE_CROP, type='RandomResizedCrop', crop_ratio_range=ratio),
                 dict(type='PackInputs'))
    ours = pipe(dict(MAE_CROP, type='RandomResizedCropDecode', crop_ratio_range=ratio),
                dict(type='PackInputs'))
    drawn, after = [], []
    for p in (stock, ours):
        with recorded_boxes(p) as boxes:
            run(p, paths * 3, seed=7)
        drawn.append(boxes)
        after.append(np.random.rand())  # the generator is where the stock one leaves it
    assert len(drawn[0]) == 3 * len(paths)
    assert drawn[0] == drawn[1] and after[0] == after[1]
    assert len({b[2:] for b in drawn[0]}) > len(paths)  # the draws are random, not fixed


def test_full_decode_gives_the_stock_pixels(paths):
    for backend in ('pillow', 'cv2'):
        crop = dict(MAE_CROP, backend=backend)
        stock = pixels(run(pipe(load(), dict(crop, type='RandomResizedCrop'),
                                dict(type='PackInputs')), paths, seed=3))
        ours = pixels(run(pipe(dict(crop, type='RandomResizedCropDecode', max_draft_scale=1),
                               dict(type='PackInputs')), paths, seed=3))
        diff = [np.abs(a.astype(int) - b) for a, b in zip(stock, ours)]
        if backend == 'cv2':  # the same decoder and the same resize
            assert all(d.max() == 0 for d in diff)
        else:  # torch's antialiased bicubic is PIL's filter, up to rounding
            assert max(d.max() for d in diff) <= 2
            assert np.mean([d.mean() for d in diff]) < 0.02


def test_reduced_scale_decoding_is_close_to_full_decoding(paths):
    outputs = {}
    for scale in (8, 1):
        p = pipe(dict(MAE_CROP, type='RandomResizedCropDecode', max_draft_scale=scale),
                 dict(type='PackInputs'))
        with recorded_boxes(p) as boxes:
            outputs[scale] = run(p, paths * 4, seed=11)
    drafted = [draft_scale(b[4:], (224, 224)) > 1 for b in boxes]
    assert sum(drafted) >= 3  # the large files do decode at 1/2 or 1/4
    psnr = PSNR()
    psnr.add(outputs[8], outputs[1])
    assert psnr.differ == sum(drafted)  # only the drafted crops change
    assert psnr.overall >= 35 and psnr.worst >= 30


def test_a_draft_really_decodes_fewer_pixels(paths):
    big = next(p for p in paths if max(Image.open(p).size) == 1400)
    h, w = Image.open(big).size[::-1]
    img, box, ori_box, ori_hw = load_cropped(big, lambda *_: (10, 20, h - 10, w - 20),
                                             (224, 224))
    s = draft_scale(ori_box[2:], (224, 224))
    assert s >= 2 and ori_hw == (h, w) and ori_box == (10, 20, h - 10, w - 20)
    assert img.shape == (math.ceil(h / s), math.ceil(w / s), 3)
    assert box == tuple(v / s for v in ori_box)


def test_a_draft_of_the_wrong_size_falls_back_to_a_full_decode(paths, monkeypatch):
    big = next(p for p in paths if max(Image.open(p).size) == 1400)
    content = open(big, 'rb').read()
    hw = read_header(content)
    full = decode(content, big)[0]
    monkeypatch.setitem(crop_decode._CV2_FLAGS, 2, cv2.IMREAD_REDUCED_COLOR_4)  # a wrong draft
    img, scale = decode(content, big, 2, hw)
    assert scale == 1 and np.array_equal(img, full)  # nothing is lost
    with pytest.raises(UnreadableImageError, match='header says'):
        decode(content, big, 1, (hw[0] + 8, hw[1]))


def test_semmae_part_map_follows_the_same_crop(paths, tmp_path):
    prefix = osp.dirname(osp.dirname(paths[0]))
    rng = np.random.default_rng(0)
    for p in paths:
        save_part_map(part_map_path(str(tmp_path), prefix, p), rng.integers(0, 7, (14, 14)))
    part = dict(type='LoadPartMap', part_root=str(tmp_path), img_prefix=prefix, grid=14,
                num_parts=7)
    tail = [dict(type='RandomFlipWithPartMap', prob=0.5),
            dict(type='PackInputs', algorithm_keys=['part_ids'])]
    stock = pipe(load(), part, dict(MAE_CROP, type='RandomResizedCropWithPartMap'), *tail)
    ours = pipe(part, dict(MAE_CROP, type='RandomResizedCropDecode'), *tail)
    for i, p in enumerate(paths):
        out = []
        for pipeline in (stock, ours):
            np.random.seed(i)
            out.append(pipeline(dict(img_path=p))['data_samples'].part_ids)
        assert out[0].shape == (14, 14) and np.array_equal(out[0], out[1]), p


def test_beit_two_views_match_the_stock_transform(paths):
    stock = pipe(load(), dict(BEIT_CROP, type='RandomResizedCropAndInterpolationWithTwoPic'),
                 dict(type='PackInputs'))
    whole = pipe(dict(BEIT_CROP, type='RandomResizedCropDecodeWithTwoPic', max_draft_scale=1),
                 dict(type='PackInputs'))
    ours = pipe(dict(BEIT_CROP, type='RandomResizedCropDecodeWithTwoPic'),
                dict(type='PackInputs'))
    a, b, c = (run(p, paths * 2, seed=5) for p in (stock, whole, ours))
    assert [[t.shape for t in v] for v in a] == [[(3, 224, 224), (3, 112, 112)]] * len(a)
    assert all(np.array_equal(x, y) for x, y in zip(pixels(a), pixels(b)))  # same boxes
    psnr = PSNR()
    psnr.add(c, b)
    assert psnr.differ >= 1 and psnr.overall >= 35


def test_beit_crop_transforms_flip_both_views_with_the_box(paths):
    plain = pipe(dict(BEIT_CROP, type='RandomResizedCropDecodeWithTwoPic'),
                 dict(type='PackInputs'))
    flipped = pipe(dict(BEIT_CROP, type='RandomResizedCropDecodeWithTwoPic', crop_transforms=[
        dict(type='RandomFlip', prob=1.0, direction='horizontal')]), dict(type='PackInputs'))
    # seeded per image: the flip's own draw comes after the box, but moves the next image's
    a, b = ([run(p, [path], seed=i)[0] for i, path in enumerate(paths)] for p in (plain, flipped))
    psnr = PSNR()
    psnr.add([[t.flip(-1) for t in v] for v in a], b)
    assert psnr.overall >= 40  # the mirrored crop, both views (resampling rounds differently)
    with pytest.raises(ValueError, match='horizontal'):
        pipe(dict(BEIT_CROP, type='RandomResizedCropDecodeWithTwoPic', crop_transforms=[
            dict(type='RandomFlip', prob=0.5, direction='vertical')]))


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_each_family_switch_runs_and_gives_what_its_stock_pipeline_gives(family, paths,
                                                                         tmp_path):
    ours_cfg, stock_cfg = FAMILIES[family]
    ours = build_pipeline(osp.join(ROOT, ours_cfg) if '::' not in ours_cfg else ours_cfg,
                          paths, str(tmp_path))
    stock = build_pipeline(osp.join(ROOT, stock_cfg) if '::' not in stock_cfg else stock_cfg,
                           paths, str(tmp_path))
    assert not any(type(t).__name__ == 'LoadImageFromFile' for t in ours.transforms)
    for i, p in enumerate(paths):
        got, want = (pl(dict(img_path=p, sample_idx=i, gt_label=0)) for pl in (ours, stock))
        views = [x['inputs'] if isinstance(x['inputs'], list) else [x['inputs']]
                 for x in (got, want)]
        assert [[(t.shape, t.dtype) for t in v] for v in views] == \
            [[(t.shape, t.dtype) for t in views[1]]] * 2, family
        assert set(got['data_samples'].keys()) == set(want['data_samples'].keys())
    if family == 'beit':
        assert [tuple(t.shape) for t in got['inputs']] == [(3, 224, 224), (3, 112, 112)]
    if family == 'semmae':
        assert got['data_samples'].part_ids.shape == (14, 14)


def _exif(orientation: int) -> bytes:
    """A minimal little-endian EXIF block holding only the orientation tag."""
    return (b'Exif\0\0II' + struct.pack('<HI', 42, 8) + struct.pack('<H', 1)
            + struct.pack('<HHIHH', 0x0112, 3, 1, orientation, 0) + struct.pack('<I', 0))


def test_png_and_exif_rotated_jpeg_give_the_stock_output(paths, tmp_path):
    photo = np.asarray(Image.open(paths[0]).convert('RGB'))
    png, rotated = str(tmp_path / 'a.png'), str(tmp_path / 'r.jpg')
    Image.fromarray(photo).save(png)
    Image.fromarray(photo).save(rotated, quality=90, exif=_exif(6))
    assert read_header(open(png, 'rb').read()) is None
    assert read_header(open(rotated, 'rb').read()) == photo.shape[1::-1]  # sides swapped
    crop = dict(MAE_CROP, backend='cv2')
    stock = pipe(load(), dict(crop, type='RandomResizedCrop'), dict(type='PackInputs'))
    ours = pipe(dict(crop, type='RandomResizedCropDecode'), dict(type='PackInputs'))
    for path in (png, rotated):
        with recorded_boxes(stock) as a:
            want = pixels(run(stock, [path] * 3, seed=1))
        with recorded_boxes(ours) as b:
            got = pixels(run(ours, [path] * 3, seed=1))
        assert a == b and all(np.array_equal(x, y) for x, y in zip(want, got)), path
    assert a[0][:2] == photo.shape[1::-1]  # the box was drawn on the rotated image


def bad_files(tmp_path, good: str) -> dict:
    data = open(good, 'rb').read()
    files = {'truncated': data[:len(data) // 2], 'not an image': b'this is a text file\n' * 9,
             'cut after the header': data[:data.index(b'\xff\xda') + 40]}
    out = {}
    for name, content in files.items():
        path = tmp_path / f"{name.replace(' ', '_')}.jpg"
        path.write_bytes(content)
        out[name] = str(path)
    return out


def test_a_bad_file_is_one_line_naming_it_and_the_fix(paths, tmp_path):
    from mim_plugins.apis.errors import explain
    from mim_plugins.datasets.skip_corrupt import is_unreadable_image
    ours = pipe(dict(MAE_CROP, type='RandomResizedCropDecode'), dict(type='PackInputs'))
    for name, path in bad_files(tmp_path, paths[0]).items():
        with pytest.raises(UnreadableImageError) as info:
            ours(dict(img_path=path))
        text = str(info.value)
        assert path in text and 'Fix:' in text and '--skip-corrupt-images' in text, name
        assert '\n' not in text
        assert is_unreadable_image(info.value)  # SkipCorruptImages skips it
        message = explain(info.value)
        assert message and path in message and '\n' not in message


def test_skip_corrupt_images_skips_and_lists_them(paths, tmp_path):
    from mim_plugins.datasets import SkipCorruptImages
    from mim_plugins.datasets.skip_corrupt import SKIPPED_KEY
    folder = tmp_path / 'data' / 'train' / 'x'
    folder.mkdir(parents=True)
    for i, p in enumerate(paths[:2]):
        (folder / f'{i}_good.jpg').write_bytes(open(p, 'rb').read())
    bad = bad_files(tmp_path, paths[0])
    for name in ('truncated', 'not an image'):
        (folder / osp.basename(bad[name]).replace('.jpg', '_z.jpg')).write_bytes(
            open(bad[name], 'rb').read())
    init_default_scope('mmpretrain')
    dataset = SkipCorruptImages(dict(
        type='CustomDataset', data_root=str(tmp_path / 'data'), data_prefix='train',
        with_label=False, pipeline=[dict(MAE_CROP, type='RandomResizedCropDecode'),
                                    dict(type='PackInputs')]))
    names = [osp.basename(dataset.get_data_info(i)['img_path']) for i in range(len(dataset))]
    assert names == ['0_good.jpg', '1_good.jpg', 'not_an_image_z.jpg', 'truncated_z.jpg']
    sample = dataset[2]  # both bad files, then index 0 again
    assert sample['inputs'].shape == (3, 224, 224)
    skipped = [osp.basename(p) for p in sample['data_samples'].metainfo[SKIPPED_KEY]]
    assert skipped == ['not_an_image_z.jpg', 'truncated_z.jpg']
    assert SKIPPED_KEY not in dataset[1]['data_samples'].metainfo


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_benchmark_pipeline_mode_reports_speed_boxes_and_psnr(tmp_path):
    out = tmp_path / 'pipeline.json'
    result = subprocess.run(
        [sys.executable, 'tools/benchmark.py', 'pipeline', '--images', '6', '--rounds', '1',
         '--box-passes', '1', '--profile-top', '3', '--pair', '='.join(FAMILIES['mae']),
         '--pair', '='.join(FAMILIES['beit']), '--json', str(out)],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| ours | stock img/s | ours img/s | speed-up |' in result.stdout
    assert 'load average' in result.stdout
    report = json.loads(out.read_text())
    mae, beit = report['comparisons']
    for row in (mae, beit):
        assert row['images'] == 6 and row['boxes'] == 6
        assert row['stock_img_s'] > 0 and row['ours_img_s'] > 0
        assert sum(row['draft_scales'].values()) == 6
        assert all(0 <= p <= 1 for p in row['ks_pvalues'].values())
        assert row['psnr_vs_full_decode'] >= 35
        assert len(row['profile']) == 3 and 0 < row['profile'][0]['share'] <= 1
    assert mae['identical_boxes'] == 6 and mae['psnr_vs_stock'] >= 35
    # BEiT's jitter and flip draw before the stock crop and after ours: other boxes
    assert beit['psnr_vs_stock'] is None


def test_crop_decode_repr_and_bad_arguments():
    t = crop_decode.RandomResizedCropDecode(**MAE_CROP, max_draft_scale=4)
    assert 'max_draft_scale=4' in repr(t) and 'crop_ratio_range=(0.2, 1.0)' in repr(t)
    with pytest.raises(ValueError, match='max_draft_scale'):
        crop_decode.RandomResizedCropDecode(**MAE_CROP, max_draft_scale=3)
    with pytest.raises(ValueError, match='backend'):
        crop_decode.RandomResizedCropDecode(**dict(MAE_CROP, backend='turbojpeg'))
    assert read_header(b'\xff\xd8\xff') is None and read_header(io.BytesIO().getvalue()) is None


def test_a_loader_left_in_front_is_an_error_not_a_second_decode(paths):
    for crop in (dict(MAE_CROP, type='RandomResizedCropDecode'),
                 dict(BEIT_CROP, type='RandomResizedCropDecodeWithTwoPic')):
        with pytest.raises(ValueError, match='remove LoadImageFromFile'):
            pipe(load(), crop)(dict(img_path=paths[0]))
