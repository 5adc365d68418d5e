"""A run killed mid-epoch and continued with --resume repeats the uninterrupted run exactly.

tools/train.py runs SemMAE's demo config (λ per epoch, per-iteration warm-up + cosine lr, random
crops and masks) on the tiny data: 20 images, batch 4, 5 iterations per epoch, 3 epochs. The
killed run dies (``os._exit``, no clean-up) after iteration 8, mid-epoch 2, two iterations after
its last checkpoint (iteration 6, checkpoints every 3 iterations); or, with a checkpoint per
epoch, after iteration 12, two iterations after the checkpoint of epoch 2.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from conftest import ROOT, make_part_maps, run_env

SEMMAE_CFG = osp.join(ROOT, 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
ITERS_PER_EPOCH, EPOCHS = 5, 3


@HOOKS.register_module(force=True)
class RecordIterHook(Hook):
    """Appends one JSON line per training iteration: what must continue exactly."""

    priority = 'LOW'  # after the param scheduler has logged this iteration's lr

    def __init__(self, path: str):
        self.path = path

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        lam = runner.message_hub.get_scalar('train/mask_lambda').current()
        row = dict(iter=runner.iter + 1, epoch=runner.epoch + 1, batch=batch_idx + 1,
                   samples=[s.sample_idx for s in data_batch['data_samples']],
                   loss=float(outputs['loss']), lr=runner.optim_wrapper.get_lr()['lr'][0],
                   lam=lam)
        with open(self.path, 'a') as f:
            f.write(json.dumps(row) + '\n')


@HOOKS.register_module(force=True)
class KillAtIterHook(Hook):
    """Ends the process abruptly after iteration ``iteration``, as a crash or a kill would."""

    priority = 'VERY_LOW'

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            os._exit(3)


def write_config(tmp_path, tiny_data, name: str, workers: int, ckpt_every: int = 3,
                 kill_at: int = 0) -> str:
    """The test's config; ``ckpt_every`` iterations between checkpoints (0: one per epoch)."""
    cfg = Config.fromfile(SEMMAE_CFG)
    cfg.custom_imports.imports.append('test_resume')
    img_prefix = osp.join(tiny_data, 'train')
    part_root = str(tmp_path / 'parts')
    if not osp.isdir(part_root):
        make_part_maps(img_prefix, part_root, grid=7, num_parts=7)
    for t in cfg.train_dataloader.dataset.pipeline:
        if t.type == 'LoadPartMap':
            t.update(part_root=part_root, img_prefix=img_prefix)
    cfg.train_dataloader.update(batch_size=4, num_workers=workers,
                                persistent_workers=workers > 0)
    cfg.train_dataloader.dataset.data_root = tiny_data
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook', interval=ckpt_every or 1,
                                        by_epoch=not ckpt_every, max_keep_ckpts=2)
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks.append(dict(type='RecordIterHook', path=str(tmp_path / f'{name}.jsonl')))
    if kill_at:
        cfg.custom_hooks.append(dict(type='KillAtIterHook', iteration=kill_at))
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def train(config: str, work_dir, *args):
    env = run_env()
    env['PYTHONPATH'] = os.pathsep.join([ROOT, osp.join(ROOT, 'tests')])
    return subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def records(tmp_path, name: str) -> list:
    with open(tmp_path / f'{name}.jsonl') as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, tiny_data):
    tmp = tmp_path_factory.mktemp('uninterrupted')
    out = train(write_config(tmp, tiny_data, 'full', workers=0), tmp / 'work')
    assert out.returncode == 0, out.stderr[-3000:]
    rows = records(tmp, 'full')
    assert [r['iter'] for r in rows] == list(range(1, ITERS_PER_EPOCH * EPOCHS + 1))
    return rows


def kill_then_resume(tmp_path, tiny_data, workers: int, ckpt_every: int, kill_at: int):
    """Train until killed after ``kill_at``, then --resume; both runs' records and the log."""
    work = tmp_path / 'work'
    killed = train(write_config(tmp_path, tiny_data, 'killed', workers, ckpt_every, kill_at),
                   work)
    assert killed.returncode == 3, killed.stderr[-3000:]
    name = f'iter_{kill_at // ckpt_every * ckpt_every}' if ckpt_every else \
        f'epoch_{kill_at // ITERS_PER_EPOCH}'
    assert (work / 'last_checkpoint').read_text().strip().endswith(f'{name}.pth')
    resumed = train(write_config(tmp_path, tiny_data, 'resumed', workers, ckpt_every), work,
                    '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return records(tmp_path, 'killed'), records(tmp_path, 'resumed'), resumed.stdout


@pytest.mark.slow
@pytest.mark.parametrize('ckpt_every,kill_at', [(3, 8), (0, 12)],
                         ids=['mid-epoch', 'epoch-checkpoint'])
def test_resume_repeats_the_uninterrupted_run_exactly(uninterrupted, tiny_data, tmp_path,
                                                      ckpt_every, kill_at):
    killed, resumed, log = kill_then_resume(tmp_path, tiny_data, 0, ckpt_every, kill_at)
    assert killed == uninterrupted[:kill_at]  # same seed, same run until the kill
    # From the checkpoint on, the same iterations again: same epoch/batch position, samples,
    # crops and masks (the loss is equal to the last bit), lr and λ. Stock mmengine restarts the
    # epoch from its first batch and re-seeds the generators.
    every = ckpt_every or ITERS_PER_EPOCH
    last = kill_at // every * every
    assert resumed == uninterrupted[last:]
    # (mmengine names the epoch a checkpoint by iteration was taken in, 0-based, and the epochs
    # a checkpoint by epoch completed)
    assert f'resumed epoch: {(last - 1 if ckpt_every else last) // ITERS_PER_EPOCH}, ' \
        f'iter: {last}' in log
    if ckpt_every:
        assert 'Resuming mid-epoch: epoch 2 continues at batch 2/5' in log
        assert 'Epoch(train) [2][2/5]' in log and 'Epoch(train) [2][1/5]' not in log
        # λ moved at the epoch boundary only, the lr followed the per-iteration schedule
        assert len({r['lam'] for r in resumed}) == 2 and len({r['lr'] for r in resumed}) > 5


@pytest.mark.slow
def test_resume_with_workers_continues_data_order_lr_and_lambda(uninterrupted, tiny_data,
                                                                tmp_path):
    # With 2 persistent workers the sampler skips the consumed indices; the crops drawn in the
    # workers restart from the worker seeds, so only the loss may differ.
    _, resumed, _ = kill_then_resume(tmp_path, tiny_data, 2, ckpt_every=3, kill_at=8)
    keys = ('iter', 'epoch', 'batch', 'samples', 'lr', 'lam')
    assert [{k: r[k] for k in keys} for r in resumed] == \
        [{k: r[k] for k in keys} for r in uninterrupted[6:]]


@pytest.mark.parametrize('world_size', [1, 2, 3])
def test_sampler_skip_continues_each_ranks_permutation(world_size):
    from mim_plugins.datasets import ResumableSampler
    for rank in range(world_size):
        sampler = ResumableSampler(list(range(23)), shuffle=True, seed=5)
        sampler.rank, sampler.world_size = rank, world_size  # as a rank of a group would
        sampler.num_samples = -(-23 // world_size)
        sampler.total_size = sampler.num_samples * world_size
        sampler.set_epoch(2)
        full = list(sampler)
        sampler.skip(4)
        assert list(sampler) == full[4:]
        assert list(sampler) == full  # the skip applies to one pass only
        assert len(sampler) == len(full)
