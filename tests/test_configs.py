"""Every shipped model builds and trains 2 iterations on tiny generated data (in-process), in
the Runner tools/train.py builds: the config's resilient loop, sampler and checkpoint hook,
and its NaN guard, so a config whose loss becomes NaN fails here as it would fail a user's run. The loss
must be finite and the weights must move.

A config that is another's twin, the same model with only a longer schedule or a crop-aware
decoding pipeline, is not trained a second time: ``test_twins_differ_only_in_their_schedule``
and ``test_crop_decode_twins_differ_only_in_their_train_pipeline`` prove that the difference is
all there is, and the pipeline twin's pipeline runs on the tiny data (test_crop_decode.py checks
it against the stock pipeline on JPEGs)."""
import glob
import math
import os.path as osp
import re
import uuid
from typing import Dict, Sequence

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from conftest import ROOT, make_part_maps
from mim_plugins.apis.common import load_config
from mim_plugins.apis.train import build_runner, parse_args
from mim_plugins.engine.hooks.nan_guard_hook import NonFiniteLossError

CONFIGS = sorted(osp.relpath(p, ROOT)
                 for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)
# twin -> the config it repeats with a longer schedule (the paper's 800 and 1600 epochs)
SCHEDULE_TWINS = {
    f'configs/mae/mae_vit-{arch}_8xb512-coslr-1600e_in1k.py':
        f'configs/mae/mae_vit-{arch}_8xb512-coslr-800e_in1k.py'
    for arch in ('base-p16', 'large-p16', 'huge-p14')}
# twin -> the config whose train pipeline it swaps for crop-aware JPEG decoding
CROP_DECODE_TWINS = {
    c: c.replace('crop_decode/', '').replace('-cropdecode', '')
    for c in CONFIGS if '/crop_decode/' in c}
TRAINED = [c for c in CONFIGS if c not in SCHEDULE_TWINS and c not in CROP_DECODE_TWINS]
# The MNIST configs train in seconds: they stay in the fast tier; the ViT-B/L/H recipes are slow.
TRAINED_PARAMS = [pytest.param(c, id=c, marks=() if 'mnist5k' in c else pytest.mark.slow)
                  for c in TRAINED]


def shallow_large_vits(cfg: Config) -> None:
    """ViT-L/H keep their width, heads and patch size but run 2 layers here: at full depth their
    2 CPU iterations need 10-19 GB and minutes. test_mae_configs.py checks their full-size
    checkpoints against the stock backbones on the meta device."""
    from mmpretrain.models import VisionTransformer
    backbone = cfg.model.get('backbone', {})
    arch = backbone.get('arch')
    if isinstance(arch, str) and arch.lower() in ('l', 'large', 'h', 'huge'):
        backbone.arch = dict(VisionTransformer.arch_zoo[arch.lower()], num_layers=2)
        if backbone.get('frozen_stages', -1) > 2:  # linear probes freeze every layer
            backbone.frozen_stages = 2


def shard_tiny_data(dataset: dict, data_root: str, work_dir: str) -> None:
    """A streamed ``ShardDataset`` gets 4 of the tiny train images, packed into 2 shards."""
    from mim_plugins.datasets.shards import write_shards
    paths = sorted(glob.glob(osp.join(data_root, 'train', '*', '*.png')))[:4]
    samples = []
    for i, path in enumerate(paths):
        with open(path, 'rb') as f:
            samples.append((f'{i:06d}', {'png': f.read()}))
    write_shards(samples, osp.join(work_dir, 'shards'), samples_per_shard=2)
    dataset.update(data_root=osp.join(work_dir, 'shards'), shards='train-{000000..000001}.tar',
                   index='train-index.json', batch_size=2)


def shrink(cfg: Config, data_root: str, work_dir: str) -> None:
    """Point every dataloader at the tiny data (a shard data set: shards of it) and make the
    epoch exactly 2 iterations of 2 images (ViT-L/H at full size stay affordable on CPU: the model is real, the batch is tiny);
    SemMAE pipelines get random part maps of their grid for the tiny train images."""
    cfg.work_dir = work_dir
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:8]}'
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = None  # 2 iterations prove training; a 1-8 GB file proves nothing
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            cfg[key].update(num_workers=0, persistent_workers=False)
            if cfg[key].dataset.get('type') == 'ShardDataset':
                shard_tiny_data(cfg[key].dataset, data_root, work_dir)
                continue
            cfg[key].dataset.data_root = data_root
            cfg[key].dataset.indices = 4 if key == 'train_dataloader' else 2
    cfg.train_dataloader.update(batch_size=2, drop_last=True)
    for transform in cfg.train_dataloader.dataset.get('pipeline', []):
        if transform.get('type') == 'LoadPartMap':
            transform.img_prefix = osp.join(data_root, 'train')
            transform.part_root = make_part_maps(transform.img_prefix,
                                                 osp.join(work_dir, 'part_maps'),
                                                 transform.grid, transform.num_parts)


def drop_pretrained(node) -> None:
    """No checkpoint is needed here: every ``init_cfg=dict(type='Pretrained', ...)`` in the model
    (downstream encoders, BEiT's DALL-E tokenizer) becomes a random initialisation."""
    if isinstance(node, dict):
        if isinstance(node.get('init_cfg'), dict) and node.init_cfg.get('type') == 'Pretrained':
            node.init_cfg = None
        for value in node.values():
            drop_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            drop_pretrained(value)


class Witness(Hook):
    """Records what the two iterations did: the trainable weights once initialised (before the
    first step) and after the last step, and every iteration's total loss."""

    def __init__(self) -> None:
        self.before: Dict[str, torch.Tensor] = {}
        self.after: Dict[str, torch.Tensor] = {}
        self.losses = []

    @staticmethod
    def _trainable(runner) -> Dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in runner.model.named_parameters()
                if p.requires_grad}

    def before_train(self, runner) -> None:
        self.before = self._trainable(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append(torch.as_tensor(outputs['loss']).item())

    def after_train(self, runner) -> None:
        self.after = self._trainable(runner)


def train_two_iterations(config: str, data_root: str, work_dir: str,
                         options: Sequence[str] = (), nan_guard: bool = True) -> Runner:
    """Train the shrunk ``config`` (with ``--cfg-options options``; without the config's
    ``NaNGuardHook`` when not ``nan_guard``) in the Runner tools/train.py builds for it;
    returns the runner once it has trained, its ``Witness`` as ``runner.witness``."""
    args = parse_args([osp.join(ROOT, config), '--work-dir', work_dir] +
                      (['--cfg-options', *options] if options else []))
    cfg = load_config(args)
    assert cfg.custom_imports == dict(imports=['mim_plugins'], allow_failed_imports=False)
    drop_pretrained(cfg.model)
    shrink(cfg, data_root, work_dir)
    shallow_large_vits(cfg)
    if not nan_guard:
        cfg.custom_hooks = [h for h in cfg.custom_hooks if h['type'] != 'NaNGuardHook']
    runner = build_runner(args, cfg)
    runner.witness = Witness()
    runner.register_hook(runner.witness, priority='LOWEST')
    runner.train()
    return runner


@pytest.mark.parametrize('config', TRAINED_PARAMS)
def test_config_trains_two_iterations(config, request, tmp_path):
    # the photo demo's configs read its own layout (meta/unlabelled.txt, train/test splits)
    data = 'tiny_photos' if 'groceries' in osp.basename(config) else 'tiny_data'
    runner = train_two_iterations(config, request.getfixturevalue(data), str(tmp_path))
    assert runner.iter == 2
    assert any(type(h).__name__ == 'NaNGuardHook' for h in runner.hooks)
    witness = runner.witness
    assert len(witness.losses) == 2 and all(math.isfinite(x) for x in witness.losses), \
        witness.losses
    assert witness.before.keys() == witness.after.keys() and witness.before
    moved = [n for n in witness.before if not torch.equal(witness.before[n], witness.after[n])]
    # Every trainable tensor that gets a gradient or weight decay moves; the few that get
    # neither (e.g. a bias before a norm that cancels it) stay, but never most of them.
    assert len(moved) >= len(witness.before) / 2, \
        f'{len(moved)} of {len(witness.before)} trainable tensors moved'


def test_a_config_whose_loss_becomes_nan_fails(tiny_data, tmp_path):
    """A zero std makes every normalised pixel infinite, so the first loss is NaN: the config's
    NaN guard stops training there; without it, the run would go on."""
    config = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
    zero_std = 'data_preprocessor.std=[0.0,0.0,0.0]'
    with pytest.raises(NonFiniteLossError, match=r'^loss became NaN at iteration 1; '):
        train_two_iterations(config, tiny_data, str(tmp_path / 'guarded'), [zero_std])
    unguarded = train_two_iterations(config, tiny_data, str(tmp_path / 'unguarded'),
                                     [zero_std], nan_guard=False)
    assert unguarded.iter == 2


def flat(node, prefix: str = '') -> Dict[str, object]:
    """A config as ``{dotted.key[i]: leaf}``, without mmengine's ``_scope_`` bookkeeping."""
    if isinstance(node, dict):
        items = [(f'{prefix}.{k}' if prefix else str(k), v) for k, v in node.items()
                 if k != '_scope_']
    elif isinstance(node, (list, tuple)) and node:
        items = [(f'{prefix}[{i}]', v) for i, v in enumerate(node)]
    else:
        return {prefix: node}
    out = {}
    for key, value in items:
        out.update(flat(value, key))
    return out


def config_diff(a: str, b: str) -> Dict[str, tuple]:
    fa, fb = (flat(Config.fromfile(osp.join(ROOT, c)).to_dict()) for c in (a, b))
    return {k: (fa.get(k), fb.get(k)) for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k)}


def test_every_config_is_trained_or_a_twin_of_a_trained_one():
    assert len(SCHEDULE_TWINS) == 3 and len(CROP_DECODE_TWINS) >= 5
    for twin, original in {**SCHEDULE_TWINS, **CROP_DECODE_TWINS}.items():
        assert twin in CONFIGS and original in TRAINED, (twin, original)


@pytest.mark.parametrize('twin', sorted(SCHEDULE_TWINS))
def test_twins_differ_only_in_their_schedule(twin):
    original = SCHEDULE_TWINS[twin]
    diff = config_diff(original, twin)
    assert diff, 'a twin that changes nothing should not exist'
    outside = [k for k in diff if not re.match(r'^(max_epochs|train_cfg\.max_epochs|'
                                               r'param_scheduler\[\d+\]\.\w+)$', k)]
    assert not outside, f'{twin} differs from {original} beyond the schedule: {outside}'
    twin_cfg, original_cfg = (Config.fromfile(osp.join(ROOT, c)) for c in (twin, original))
    for cfg, name in ((original_cfg, original), (twin_cfg, twin)):
        epochs = int(re.search(r'-(\d+)e_', name).group(1))  # the schedule the name promises
        cosine = cfg.param_scheduler[-1]
        assert cfg.train_cfg.max_epochs == epochs and cosine.end == epochs
        assert cosine.T_max == epochs - cfg.param_scheduler[0].end  # the cosine after warm-up
    assert twin_cfg.train_cfg.max_epochs == 2 * original_cfg.train_cfg.max_epochs


@pytest.mark.parametrize('twin', sorted(CROP_DECODE_TWINS))
def test_crop_decode_twins_differ_only_in_their_train_pipeline(twin, tiny_data):
    original = CROP_DECODE_TWINS[twin]
    diff = config_diff(original, twin)
    outside = [k for k in diff
               if not re.match(r'^(train_pipeline|train_dataloader\.dataset\.pipeline)\[', k)]
    assert not outside, f'{twin} differs from {original} beyond the train pipeline: {outside}'
    cfg = Config.fromfile(osp.join(ROOT, twin))
    assert any('Decode' in t.type for t in cfg.train_dataloader.dataset.pipeline)
    # The twin's own pipeline runs on a tiny image (PNG: the full-decode path) and packs what the
    # original's does; the model it feeds is the original's, trained above.
    init_default_scope('mmpretrain')
    image = sorted(glob.glob(osp.join(tiny_data, 'train', '*', '*.png')))[0]
    outputs = []
    for config in (twin, original):
        pipeline = [dict(t) for t in Config.fromfile(osp.join(ROOT, config)).train_pipeline]
        for t in pipeline:
            if t.get('type') == 'LoadPartMap':
                t.update(img_prefix=osp.join(tiny_data, 'train'),
                         part_root=make_part_maps(osp.join(tiny_data, 'train'),
                                                  osp.join(tiny_data, '..', 'twin_parts'),
                                                  t['grid'], t['num_parts']))
        outputs.append(Compose(pipeline)(dict(img_path=image, sample_idx=0, gt_label=0)))
    shapes = [[tuple(t.shape) for t in (o['inputs'] if isinstance(o['inputs'], list)
                                        else [o['inputs']])] for o in outputs]
    assert shapes[0] == shapes[1]
    assert set(outputs[0]['data_samples'].keys()) == set(outputs[1]['data_samples'].keys())
