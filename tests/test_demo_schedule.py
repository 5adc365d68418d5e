"""The demos' length flags refit the recipe's learning-rate schedule (tools/demo_schedule.py):
stepped through mmengine's own schedulers, a shorter or longer run anneals at its own last step,
keeps the warm-up, and trains the epochs asked for."""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from conftest import ROOT

sys.path.insert(0, osp.join(ROOT, 'tools'))
from demo_schedule import refit_config, refit_schedulers  # noqa: E402

PRETRAIN = osp.join(ROOT, 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
SEG = osp.join(ROOT, 'configs_seg/mae/mae-tiny-p4_upernet_1xb16-300it_mnist5k-seg-28x28.py')
STEPS_PER_EPOCH = 4


def learning_rates(cfg: Config, epochs: int) -> list:
    """The lr at every iteration of ``epochs`` epochs under ``cfg``'s schedulers (by epoch,
    converted to iterations as the Runner converts them)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    schedulers = []
    for sched in cfg.param_scheduler:
        sched = dict(sched, optimizer=optimizer)
        if sched.pop('convert_to_iter_based', False):
            sched.pop('by_epoch')
            cls = PARAM_SCHEDULERS.get(sched.pop('type'))
            schedulers.append(cls.build_iter_from_epoch(epoch_length=STEPS_PER_EPOCH, **sched))
        else:
            schedulers.append(PARAM_SCHEDULERS.build(sched))
    lrs = []
    for _ in range(epochs * STEPS_PER_EPOCH):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for s in schedulers:
            s.step()
    return lrs


@pytest.mark.parametrize('epochs', [10, 15, 30])
def test_a_refitted_run_anneals_at_its_own_last_step(tmp_path, epochs):
    path = refit_config(PRETRAIN, epochs, str(tmp_path))
    cfg = Config.fromfile(path)
    assert cfg.train_cfg.max_epochs == epochs
    recipe = learning_rates(Config.fromfile(PRETRAIN), 15)
    lrs = learning_rates(cfg, epochs)
    warmup = Config.fromfile(PRETRAIN).warmup_epochs * STEPS_PER_EPOCH
    assert lrs[:warmup] == pytest.approx(recipe[:warmup])  # the warm-up keeps its length
    assert max(lrs) == pytest.approx(1.0, rel=1e-6)
    assert lrs[-1] < 0.005  # annealed at its own last step
    assert lrs[-1] < lrs[-1 - STEPS_PER_EPOCH] < 0.05
    if epochs == 15:
        assert lrs == pytest.approx(recipe)
    # the cosine's midpoint sits halfway through the part after the warm-up
    middle = warmup + (len(lrs) - warmup) // 2
    assert lrs[middle] == pytest.approx(0.5, abs=0.05)


def test_overriding_max_epochs_alone_would_not_anneal(tmp_path):
    """What the flag used to do (and what the refit fixes): 10 epochs of the 15-epoch recipe
    stop with the learning rate still above a fifth of its peak."""
    cfg = Config.fromfile(PRETRAIN)
    truncated = learning_rates(cfg, 10)
    assert truncated[-1] > 0.2
    refitted = learning_rates(Config.fromfile(refit_config(PRETRAIN, 10, str(tmp_path))), 10)
    assert refitted[-1] < 0.01


def test_a_run_shorter_than_the_warmup_drops_the_cosine(tmp_path):
    cfg = Config.fromfile(refit_config(PRETRAIN, 1, str(tmp_path)))
    assert [s['type'] for s in cfg.param_scheduler] == ['LinearLR']
    assert cfg.param_scheduler[0]['end'] == 1


def test_iteration_based_recipes_refit_in_iterations(tmp_path):
    cfg = Config.fromfile(refit_config(SEG, 20, str(tmp_path)))
    assert cfg.train_cfg.max_iters == 20 and cfg.train_cfg.val_interval == 20
    assert [(s['type'], s['begin'], s['end']) for s in cfg.param_scheduler] == [
        ('LinearLR', 0, 20)]
    cfg = Config.fromfile(refit_config(SEG, 600, str(tmp_path)))
    assert [(s['type'], s['begin'], s['end']) for s in cfg.param_scheduler] == [
        ('LinearLR', 0, 30), ('PolyLR', 30, 600)]
    assert cfg.default_hooks.checkpoint.interval == 300  # a longer run keeps the interval


def test_the_recipe_length_returns_the_recipe_and_zero_is_refused(tmp_path):
    assert refit_config(PRETRAIN, 15, str(tmp_path)) == PRETRAIN
    with pytest.raises(ValueError, match='max_epochs must be >= 1'):
        refit_config(PRETRAIN, 0, str(tmp_path))


def test_schedulers_of_the_other_unit_are_kept():
    scheds = [dict(type='LinearLR', by_epoch=False, begin=0, end=50),
              dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=10, T_max=10)]
    out = refit_schedulers(scheds, 10, 20, by_epoch=True)
    assert out[0] == scheds[0]
    assert (out[1]['end'], out[1]['T_max']) == (20, 20)

