"""Every shipped config builds and trains 2 iterations on tiny generated data (in-process), in
the Runner tools/train.py builds: its resilient loop, sampler and checkpoint hook, and its NaN
guard, so a config whose loss becomes NaN fails here as it would fail a user's run."""
import glob
import os.path as osp
import uuid
from typing import Sequence

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import ROOT, make_part_maps
from mim_plugins.apis.common import load_config
from mim_plugins.apis.train import build_runner, parse_args
from mim_plugins.engine.hooks.nan_guard_hook import NonFiniteLossError

CONFIGS = sorted(p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in p)


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


def train_two_iterations(config: str, data_root: str, work_dir: str,
                         options: Sequence[str] = ()) -> Runner:
    """Train the shrunk ``config`` (with ``--cfg-options options``) in the Runner tools/train.py
    builds for it; returns the runner once it has trained."""
    args = parse_args([config, '--work-dir', work_dir] +
                      (['--cfg-options', *options] if options else []))
    cfg = load_config(args)
    assert cfg.custom_imports == dict(imports=['mim_plugins'], allow_failed_imports=False)
    drop_pretrained(cfg.model)
    shrink(cfg, data_root, work_dir)
    shallow_large_vits(cfg)
    runner = build_runner(args, cfg)
    runner.train()
    return runner


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_config_trains_two_iterations(config, request, tmp_path):
    # the photo demo's configs read its own layout (meta/unlabelled.txt, train/test splits)
    data = 'tiny_photos' if 'groceries' in osp.basename(config) else 'tiny_data'
    runner = train_two_iterations(config, request.getfixturevalue(data), str(tmp_path))
    assert runner.iter == 2
    assert any(type(h).__name__ == 'NaNGuardHook' for h in runner.hooks)


def test_a_config_whose_loss_becomes_nan_fails(tiny_data, tmp_path):
    """A zero std makes every normalised pixel infinite, so the first loss is NaN: the NaN guard
    stops training there, which a bare ``Runner.from_cfg`` (no guard) would not."""
    config = osp.join(ROOT, 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
    zero_std = 'data_preprocessor.std=[0.0,0.0,0.0]'
    with pytest.raises(NonFiniteLossError, match=r'^loss became NaN at iteration 1; '):
        train_two_iterations(config, tiny_data, str(tmp_path / 'guarded'), [zero_std])
    unguarded = train_two_iterations(config, tiny_data, str(tmp_path / 'unguarded'),
                                     [zero_std, 'nan_guard=False'])
    assert unguarded.iter == 2  # what this test accepted before it trained as train.py does
