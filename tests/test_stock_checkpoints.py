"""Checkpoints written by stock mmengine (HistoryBuffer, numpy in the message hub) still resume
and fine-tune through our tools and through ``Runner.from_cfg`` with the safe-checkpoint hooks,
and what our runs write loads with torch's default weights-only loader, no allowlist."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_env

MAE_CFG = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FT_CFG = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py'


def tiny_cfg(work, data, epochs):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, MAE_CFG))
    cfg.train_dataloader.update(batch_size=10, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = data
    cfg.train_cfg.max_epochs = epochs
    cfg.work_dir = str(work)
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.fixture(scope='module')
def stock_checkpoint(tmp_path_factory, tiny_data):
    """One epoch (2 iterations) by a stock mmengine runner: no hook of ours."""
    from mmengine.runner import Runner
    work = tmp_path_factory.mktemp('stock')
    cfg = tiny_cfg(work, tiny_data, 1)
    # the stock runtime instead of the config's (configs/_base_/mim_runtime.py)
    cfg.custom_hooks = []
    cfg.pop('runner_type')
    cfg.train_cfg.type = 'EpochBasedTrainLoop'
    cfg.train_dataloader.sampler.type = 'DefaultSampler'
    cfg.default_hooks.checkpoint.type = 'CheckpointHook'
    Runner.from_cfg(cfg).train()
    path = str(work / 'epoch_1.pth')
    with pytest.raises(Exception, match='HistoryBuffer'):  # really the stock format
        torch.load(path, weights_only=True)
    return path


def _losses(path):
    """The resumed run's loss history from a checkpoint of ours, read with no allowlist."""
    from mim_plugins.engine.plain_checkpoint import from_plain
    checkpoint = torch.load(path, weights_only=True)
    return from_plain(checkpoint['message_hub'])['log_scalars']['train/loss']


@pytest.mark.slow
def test_stock_checkpoint_resumes_through_train_py(tmp_path, tiny_data, stock_checkpoint):
    work = tmp_path / 'work'
    out = subprocess.run(
        [sys.executable, 'tools/train.py', MAE_CFG, '--work-dir', str(work), '--resume',
         stock_checkpoint, '--cfg-options', f'train_dataloader.dataset.data_root={tiny_data}',
         'train_dataloader.batch_size=10', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=2'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 2' in out.stdout + out.stderr
    history = _losses(work / 'epoch_2.pth')
    assert len(history._log_history) == 4  # the stock file's 2 iterations came back, + 2 new
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(work / 'epoch_2.pth')) == []


@pytest.mark.slow
def test_stock_checkpoint_resumes_and_fine_tunes_through_runner_from_cfg(tmp_path, tiny_data,
                                                                        stock_checkpoint):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = tiny_cfg(tmp_path / 'resumed', tiny_data, 2)
    cfg.update(load_from=stock_checkpoint, resume=True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.epoch == 2
    assert len(_losses(tmp_path / 'resumed' / 'epoch_2.pth')._log_history) == 4

    ft = Config.fromfile(osp.join(ROOT, FT_CFG))
    ft.model.backbone.init_cfg.checkpoint = stock_checkpoint
    for key in ('train', 'val'):
        loader = ft[f'{key}_dataloader']
        loader.update(batch_size=5, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = tiny_data
    ft.train_cfg.max_epochs = 1
    ft.work_dir = str(tmp_path / 'ft')
    runner = Runner.from_cfg(ft)
    runner.train()
    encoder = torch.load(stock_checkpoint, weights_only=False)['state_dict']
    trained = torch.load(tmp_path / 'ft' / 'epoch_1.pth', weights_only=True)['state_dict']
    # the encoder started from the stock file: its patch embedding moved only by 2 small steps
    start = encoder['backbone.patch_embed.projection.weight']
    assert (trained['backbone.patch_embed.projection.weight'] - start).abs().max() < 0.05
