"""Every configs_seg/ config builds, trains 2 iterations and runs a test pass on generated ADE20K /
VOC data; the tools run them end to end; the metric, the layer-wise lr decay and the loading of
each pretraining method's checkpoint into the segmentation backbones."""
import copy
import glob
import json
import os.path as osp
import re
import subprocess
import sys
import uuid
from argparse import Namespace
from typing import Tuple

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.apis.common import load_config
from mim_plugins.apis.train import build_runner, parse_args
from mim_plugins.datasets.seg_data import generate_shapes

SEG_CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(
    osp.join(ROOT, 'configs_seg', '**', '*.py'), recursive=True) if '_base_' not in p)
MAE_ADE = 'configs_seg/mae/mae-base_upernet_8xb2-160k_ade20k-512x512.py'
MAE_VOC = 'configs_seg/mae/mae-base_linear_8xb60-25e_voc12-448x448.py'
SIZE = 64  # crops of the shrunk configs
WIDTH = 64  # channels of the shrunk configs (ViT-B's 768 elsewhere)


@pytest.fixture(autouse=True)
def keep_default_scope():
    """A Runner of these configs leaves 'mmseg' as the process-wide default scope: put the
    previous one back, so that later tests build their mmpretrain modules as before."""
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = saved


@pytest.fixture(scope='module')
def seg_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('seg_data')
    generate_shapes(str(root / 'ade'), 'ade20k', num_train=4, num_val=2)
    generate_shapes(str(root / 'voc'), 'voc', num_train=4, num_val=2)
    return {'ade20k': str(root / 'ade'), 'voc': str(root / 'voc'), 'mnist5k-seg': str(root / 'ade')}


def data_kind(config: str) -> str:
    return next(k for k in ('ade20k', 'voc', 'mnist5k-seg') if k in osp.basename(config))


def _walk(node, fn) -> None:
    if isinstance(node, dict):
        fn(node)
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for value in node:
            _walk(value, fn)


def _small_transform(t: dict) -> None:
    """Crops and resizes of the pipelines at SIZE (the generated images are 64x48)."""
    kind = t.get('type')
    if kind in ('RandomResize', 'Resize') and t.get('scale'):
        t['scale'] = (2 * SIZE, SIZE) if t.get('keep_ratio') else (SIZE, SIZE)
    elif kind == 'RandomCrop':
        t['crop_size'] = (SIZE, SIZE)
    elif kind == 'RandomResizedCropWithSegMap':
        t['scale'] = (SIZE, SIZE)
    elif kind == 'ResizeSegMap':
        t['size'] = (SIZE, SIZE) if t.get('as_ori_shape') else (SIZE // 4, SIZE // 4)


def _narrow(d: dict) -> None:
    for key in ('in_channels', 'channels', 'embed_dim'):
        value = d.get(key)
        if value == 768:
            d[key] = WIDTH
        elif isinstance(value, (list, tuple)) and 768 in value:
            d[key] = [WIDTH] * len(value)


def shrink(cfg: Config, data_root: str, work_dir: str) -> None:
    """The same modules and pipelines at toy size: ViT-B becomes WIDTH wide with as many blocks
    as outputs (at least 2, the last ones read), its heads and neck WIDTH wide; crops SIZE; no
    checkpoint; 2 iterations (or one epoch of 4 images) of batch 2; every loader on
    ``data_root``."""
    cfg.work_dir = work_dir
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    # mmseg names its visualizer 'visualizer': one instance per process, writing into the first
    # test's (since removed) tmp_path unless each run names its own
    cfg.visualizer.name = cfg.experiment_name
    backbone = cfg.model.backbone
    if backbone.arch == 'base':  # (the demo's ViT is small already)
        outs = len(backbone.out_indices)
        depth = max(2, outs)
        backbone.arch = dict(embed_dims=WIDTH, num_heads=2, feedforward_channels=2 * WIDTH,
                             num_layers=depth)
        backbone.out_indices = list(range(depth - outs, depth))
        if backbone.get('frozen_stages', -1) > 0:
            backbone.frozen_stages = depth
        _walk(cfg.model, _narrow)
    backbone.init_cfg = None
    backbone.img_size = SIZE  # BEiTViT's position table is built for it
    # (the top-level one is what the model wrapped by --tta gets)
    for preprocessor in (cfg.model.data_preprocessor, cfg.get('data_preprocessor')):
        preprocessor.size = (SIZE, SIZE)
        if preprocessor.get('test_cfg'):
            preprocessor.test_cfg.size = (SIZE, SIZE)
    if cfg.model.test_cfg.get('mode') == 'slide':
        cfg.model.test_cfg.update(crop_size=(SIZE, SIZE), stride=(2 * SIZE // 3, ) * 2)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].update(num_workers=0, persistent_workers=False, batch_size=2)
        cfg[key].dataset.data_root = data_root
        _walk(cfg[key].dataset.pipeline, _small_transform)
    _walk(cfg.get('tta_pipeline', []), _small_transform)
    if cfg.train_cfg.type == 'IterBasedTrainLoop':
        cfg.train_cfg.update(max_iters=2, val_interval=100)
    else:
        cfg.train_cfg.update(max_epochs=1, val_interval=100)
        cfg.train_dataloader.dataset.indices = 4
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 2 if cfg.train_cfg.type == 'IterBasedTrainLoop' else 1


def test_every_seg_config_is_listed():
    assert len(SEG_CONFIGS) >= 17
    for algo in ('mae', 'supmae', 'semmae', 'beit', 'maskfeat'):
        names = [osp.basename(c) for c in SEG_CONFIGS if c.startswith(f'configs_seg/{algo}/')]
        assert any('_upernet_' in n and 'ade20k' in n for n in names), algo
        assert any('_linear_' in n and 'voc12' in n for n in names), algo


def shrunk_for_train_py(config: str, data_root: str, work_dir: str) -> Tuple[Namespace, Config]:
    """tools/train.py's arguments for ``config`` and the config it loads, shrunk: what
    ``build_runner(args, cfg)`` turns into the Runner train.py trains (NaN guard included)."""
    args = parse_args([osp.join(ROOT, config), '--work-dir', work_dir])
    cfg = load_config(args)
    shrink(cfg, data_root, work_dir)
    return args, cfg


# The MNIST configs train in seconds: the fast tier; the ViT-B recipes are slow.
@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
@pytest.mark.parametrize('config', [
    pytest.param(c, id=c, marks=() if 'mnist5k' in c else pytest.mark.slow) for c in SEG_CONFIGS])
def test_seg_config_trains_two_iterations_and_tests(config, seg_data, tmp_path):
    args, cfg = shrunk_for_train_py(config, seg_data[data_kind(config)], str(tmp_path))
    assert cfg.custom_imports == dict(imports=['mim_plugins'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmseg'
    runner = build_runner(args, cfg)
    runner.train()
    assert runner.iter == 2
    metrics = runner.test()
    assert 0 <= metrics['mIoU'] <= 100 and 'aAcc' in metrics


def _tool(args, work_dir):
    result = subprocess.run([sys.executable] + args + ['--work-dir', work_dir], cwd=ROOT,
                            env=run_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_tools_train_then_test_report_miou(seg_data, tmp_path):
    """tools/train.py (validating at the end) then tools/test.py, plain and --tta, in
    subprocesses, on the shrunk MAE ADE20K config (the demo's test runs the epoch-based linear
    probe recipe through them too)."""
    work = str(tmp_path)
    cfg = Config.fromfile(osp.join(ROOT, MAE_ADE))
    shrink(cfg, seg_data['ade20k'], work)
    shrunk = osp.join(work, 'shrunk_' + osp.basename(MAE_ADE))
    cfg.dump(shrunk)
    out = _tool(['tools/train.py', shrunk, '--cfg-options', 'train_cfg.val_interval=2'], work)
    assert re.search(r'Iter\(val\) .*aAcc: [\d.]+\s+mIoU: [\d.]+', out.stdout)
    with open(osp.join(work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    for flags in ([], ['--tta']):
        metrics_file = osp.join(work, f"metrics{''.join(flags)}.json")
        _tool(['tools/test.py', shrunk, checkpoint, '--out', metrics_file] + flags, work)
        with open(metrics_file) as f:
            metrics = json.load(f)
        assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'} and 0 <= metrics['mIoU'] <= 100


@pytest.mark.parametrize('config', [
    MAE_VOC,  # flip TTA at the 448x448 evaluation size
    'configs_seg/beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py',  # 0.5x: padded up to 640
])
@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_tta_of_the_config_runs(config, seg_data, tmp_path):
    """--tta (tools/test.py's set_tta) on a trained checkpoint, in-process."""
    from mim_plugins.apis.test import set_tta
    args, cfg = shrunk_for_train_py(config, seg_data[data_kind(config)], str(tmp_path))
    build_runner(args, cfg).train()
    with open(osp.join(str(tmp_path), 'last_checkpoint')) as f:
        cfg.load_from = f.read().strip()
    cfg.experiment_name += '_tta'
    set_tta(cfg)
    assert cfg.model.type == 'SegTTAModel'
    metrics = Runner.from_cfg(cfg).test()
    assert 0 <= metrics['mIoU'] <= 100


# ----- the metric on known predictions -----

def _val_samples(config: str, data_root: str):
    """The packed val samples of ``config`` on ``data_root`` (its real test pipeline)."""
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(osp.join(ROOT, config))
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=data_root))
    return cfg, dataset, [dataset[i]['data_samples'] for i in range(len(dataset))]


def _miou(cfg, dataset, samples, predict) -> float:
    from mmseg.registry import METRICS
    with DefaultScope.overwrite_default_scope('mmseg'):
        metric = METRICS.build(cfg.val_evaluator)
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [dict(gt_sem_seg=dict(data=s.gt_sem_seg.data),
                             pred_sem_seg=dict(data=predict(s.gt_sem_seg.data)))
                        for s in samples])
    return float(metric.compute_metrics(metric.results)['mIoU'])


def test_miou_is_100_for_a_perfect_prediction(seg_data):
    for config, kind in ((MAE_ADE, 'ade20k'), (MAE_VOC, 'voc')):
        cfg, dataset, samples = _val_samples(config, seg_data[kind])
        assert _miou(cfg, dataset, samples, lambda gt: gt.clone()) == 100.0
    # VOC is evaluated on 448x448 masks: Leopart's protocol
    cfg, _, samples = _val_samples(MAE_VOC, seg_data['voc'])
    assert samples[0].gt_sem_seg.shape == (448, 448) == samples[0].ori_shape


def test_miou_of_a_constant_prediction_is_the_iou_of_that_class_over_present_classes(seg_data):
    """Predicting class c everywhere: IoU_c = |gt = c| / |labelled pixels|, 0 for every other
    class in the ground truth, classes in neither are left out. Counted here from the raw
    ADE20K PNGs (id k is class k - 1, 0 is unlabelled)."""
    cfg, dataset, samples = _val_samples(MAE_ADE, seg_data['ade20k'])
    raw = np.concatenate([np.array(Image.open(p)).ravel() for p in sorted(glob.glob(
        osp.join(seg_data['ade20k'], 'annotations', 'validation', '*.png')))])
    labelled = raw[raw > 0].astype(int) - 1
    present = set(np.unique(labelled))
    for c in (0, 3, 42):
        expected = 100 * np.mean(labelled == c) / len(present | {c})
        got = _miou(cfg, dataset, samples, lambda gt: torch.full_like(gt, c))
        assert got == pytest.approx(expected, abs=0.006)  # IoUMetric rounds to 0.01
    assert _miou(cfg, dataset, samples, lambda gt: torch.full_like(gt, 0)) > 0


# ----- layer-wise lr decay -----

@pytest.mark.parametrize('config,rate', [
    (MAE_ADE, 0.65),
    ('configs_seg/beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py', 0.9),
    ('configs_seg/maskfeat/maskfeat-bottleneck-base_upernet_8xb2-160k_ade20k-640x640.py', 0.9),
])
def test_layer_decay_gives_each_block_its_lr(config, rate, tmp_path):
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    shrink(cfg, str(tmp_path), str(tmp_path))  # 4 blocks
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    base_lr, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    depth = 4 + 2  # stem, 4 blocks, the rest

    def lr(name):
        return groups[name]['lr'] / base_lr

    assert lr('backbone.patch_embed.projection.weight') == pytest.approx(rate ** (depth - 1))
    assert lr('backbone.cls_token') == pytest.approx(rate ** (depth - 1))
    for i in range(4):
        assert lr(f'backbone.layers.{i}.ffn.layers.1.weight') == pytest.approx(
            rate ** (depth - 2 - i))
    assert lr('decode_head.conv_seg.weight') == 1.0 and lr('neck.upsample_4x.0.weight') == 1.0
    assert len({round(lr(f'backbone.layers.{i}.ffn.layers.1.weight'), 6) for i in range(4)}) == 4
    # no weight decay on 1-D parameters, position tables and cls tokens; the rest keeps it
    assert groups['backbone.layers.0.ffn.layers.1.weight']['weight_decay'] == wd
    assert groups['backbone.layers.0.ln1.weight']['weight_decay'] == 0
    assert groups['decode_head.conv_seg.bias']['weight_decay'] == 0
    assert groups['backbone.cls_token']['weight_decay'] == 0
    if 'backbone.pos_embed' in groups:
        assert groups['backbone.pos_embed']['weight_decay'] == 0
    if 'beit' in config:  # SemanticMIM's BEiT: absolute positions, no relative bias
        assert 'backbone.pos_embed' in groups
        assert not any('relative_position' in name for name in groups)
    if 'backbone.extra_cls_tokens' in groups:  # the 8 cls tokens of the bottleneck are stem
        assert lr('backbone.extra_cls_tokens') == pytest.approx(rate ** (depth - 1))
        assert groups['backbone.extra_cls_tokens']['weight_decay'] == 0
