"""Every config runs the same thing whoever launches it.

Our ``tools/train.py`` (and ``tools/dist_train.sh``, which runs it), mmpretrain's and mmseg's
own ``tools/train.py`` (what ``mim train mmpretrain|mmsegmentation CONFIG`` runs) and a bare
``Runner.from_cfg``
get their loop, sampler and hooks from the config (``configs/_base_/mim_runtime.py``), so they
build the same runner; and the refusal the config carries (a mask field nobody reads) stops a
run through each of them.
"""
import glob
import os.path as osp
import runpy
import sys
from types import SimpleNamespace

import mmpretrain
import mmseg
import pytest
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from conftest import ROOT
from mim_plugins.apis import train as our_train
from mim_plugins.apis.common import load_config
from mim_plugins.datasets.resumable_sampler import ResumableSampler
from mim_plugins.utils.errors import UserInputError
from mim_plugins.engine import ResumableEpochBasedTrainLoop, WorkDirLockedRunner
from mim_plugins.engine.hooks import (AtomicCheckpointHook, CheckpointReportHook, MaskCheckHook,
                                      NaNGuardHook, RequireLoadedWeightsHook, ResumeGuardHook,
                                      WeightsOnlyCheckpointHook)
from test_configs import shrink

CONFIGS = sorted(p for tree in ('configs', 'configs_seg')
                 for p in glob.glob(osp.join(ROOT, tree, '**', '*.py'), recursive=True)
                 if '_base_' not in p)
# the train.py each package ships (what `mim train PACKAGE CONFIG` runs), by config tree
OPENMMLAB_TRAIN = {tree: osp.join(osp.dirname(package.__file__), '.mim', 'tools', 'train.py')
                   for tree, package in (('configs', mmpretrain), ('configs_seg', mmseg))}
RUNTIME_HOOKS = {'NaNGuardHook', 'CheckpointReportHook', 'MaskCheckHook',
                 'WeightsOnlyCheckpointHook', 'ResumeGuardHook', 'RequireLoadedWeightsHook'}
TINY_MAE = osp.join(ROOT, 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')


def runtime(cfg: Config) -> dict:
    """What decides how a run runs, beyond the model and the data."""
    sampler = cfg.train_dataloader.get('sampler') or {}
    return dict(loop=dict(cfg.train_cfg), sampler=sampler.get('type'),
                checkpoint=cfg.default_hooks.checkpoint.type,
                hooks=[h['type'] for h in cfg.get('custom_hooks') or []],
                model=cfg.model.type, runner_type=cfg.get('runner_type'))


def captured_from_cfg(monkeypatch) -> list:
    """Make ``Runner.from_cfg`` record the config it gets and return a runner that does not
    train; returns the list the configs go to."""
    seen = []

    def from_cfg(cls, cfg):
        seen.append(cfg)
        return SimpleNamespace(train=lambda: None)

    monkeypatch.setattr(Runner, 'from_cfg', classmethod(from_cfg))
    return seen


def through_ours(config: str, work_dir: str, monkeypatch) -> Config:
    seen = captured_from_cfg(monkeypatch)
    monkeypatch.setattr(our_train, 'check_data_paths', lambda *args: None)  # no ImageNet here
    our_train.main([config, '--work-dir', work_dir])
    return seen[-1]


def through_openmmlab(config: str, work_dir: str, monkeypatch) -> Config:
    seen = captured_from_cfg(monkeypatch)
    tool = OPENMMLAB_TRAIN[osp.relpath(config, ROOT).split(osp.sep)[0]]
    monkeypatch.setattr(sys, 'argv', [tool, config, '--work-dir', work_dir])
    runpy.run_path(tool, run_name='__main__')
    return seen[-1]


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: osp.relpath(p, ROOT))
def test_our_train_py_and_mim_train_pass_the_same_runtime(config, tmp_path, monkeypatch):
    ours = runtime(through_ours(config, str(tmp_path), monkeypatch))
    theirs = runtime(through_openmmlab(config, str(tmp_path), monkeypatch))
    assert ours == theirs
    # ... and it is the resilient one, from the config itself
    assert ours['checkpoint'] == 'AtomicCheckpointHook'
    assert RUNTIME_HOOKS <= set(ours['hooks'])
    if ours['loop']['type'] == 'IterBasedTrainLoop':  # ADE20K: resumes mid-run by itself
        assert ours['sampler'] == 'InfiniteSampler'
        return
    assert ours['loop']['type'] == 'ResumableEpochBasedTrainLoop'
    streamed = Config.fromfile(config).train_dataloader.dataset.type == 'ShardDataset'
    assert ours['sampler'] == (None if streamed else 'ResumableSampler')


def build(cfg: Config, via: str, tmp_path) -> Runner:
    if via == 'openmmlab':  # what mmpretrain's tools/train.py (mim train) does with a config
        return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    args = our_train.parse_args([TINY_MAE, '--work-dir', cfg.work_dir])
    return our_train.build_runner(args, cfg)


def tiny_cfg(tiny_data: str, work_dir: str) -> Config:
    cfg = load_config(our_train.parse_args([TINY_MAE, '--work-dir', work_dir]))
    shrink(cfg, tiny_data, work_dir)
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=1)
    return cfg


def test_the_built_runners_have_the_same_loop_sampler_and_hooks(tiny_data, tmp_path):
    runners = {via: build(tiny_cfg(tiny_data, str(tmp_path / via)), via, tmp_path)
               for via in ('openmmlab', 'train_py')}
    kinds = {via: (type(r), type(r.train_loop), type(r.train_dataloader.sampler),
                   [type(h) for h in r.hooks]) for via, r in runners.items()}
    assert kinds['openmmlab'] == kinds['train_py']
    runner, loop, sampler, hooks = kinds['openmmlab']
    assert runner is WorkDirLockedRunner
    assert loop is ResumableEpochBasedTrainLoop and sampler is ResumableSampler
    for hook in (AtomicCheckpointHook, NaNGuardHook, CheckpointReportHook, MaskCheckHook,
                 WeightsOnlyCheckpointHook, ResumeGuardHook, RequireLoadedWeightsHook):
        assert hook in hooks


@pytest.mark.parametrize('via', ['openmmlab', 'train_py'])
def test_a_mask_nobody_reads_is_refused_through_every_entry_point(via, tiny_data, tmp_path):
    """Stock mmpretrain MAE masks at random itself: a preprocessor that draws masks for it
    would be ignored, so the run stops before its first step, however it was launched; so does
    a stock MAEViT whose mask ratio is out of range."""
    cfg = tiny_cfg(tiny_data, str(tmp_path))
    cfg.model.data_preprocessor = dict(
        type='MaskingDataPreprocessor', preprocessor=cfg.data_preprocessor,
        mask_generator=dict(type='RandomMaskGenerator', mask_ratio=0.75, grid=7))
    runner = build(cfg, via, tmp_path)
    with pytest.raises(ValueError, match=r'writes data_sample\.mask, but MAE .* never reads it'):
        runner.train()
    assert runner.iter == 0
    cfg = tiny_cfg(tiny_data, str(tmp_path / 'ratio'))
    cfg.model.backbone.mask_ratio = 1.5
    runner = build(cfg, via, tmp_path)
    with pytest.raises(UserInputError, match=r'model\.backbone\.mask_ratio = 1\.5'):
        runner.train()
    # the same config without the mask generator trains
    cfg = tiny_cfg(tiny_data, str(tmp_path / 'plain'))
    runner = build(cfg, via, tmp_path)
    runner.train()
    assert runner.iter == 2
