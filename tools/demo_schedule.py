"""The demos' ``--pretrain-epochs`` / ``--eval-epochs`` / ``--iters``: a recipe run for another
length with its learning-rate schedule refitted to that length.

Overriding ``train_cfg.max_epochs`` alone keeps the schedule of the recipe's own length: a
shorter run stops before its cosine has annealed, a longer one spends every extra epoch at the
final learning rate. :func:`refit_config` writes a config that inherits the recipe and refits
its schedulers instead.
"""
import os
import os.path as osp
import pprint
from typing import List, Optional

from mmengine.config import Config


def refit_schedulers(schedulers: List[dict], old: int, new: int, by_epoch: bool) -> List[dict]:
    """``schedulers`` of a run of ``old`` epochs (or iterations: ``by_epoch=False``) refitted to
    ``new``: each that ran to the end (``end >= old``) now ends at ``new`` (a cosine's
    ``T_max`` follows); a warm-up that ends earlier keeps its length, cut at ``new``; one that
    would begin at or after ``new`` is dropped. Schedulers counting the other unit are kept."""
    refitted = []
    for sched in schedulers:
        sched = dict(sched)
        if sched.get('by_epoch', True) != by_epoch:
            refitted.append(sched)
            continue
        begin = sched.get('begin', 0)
        if begin >= new:
            continue
        end = sched.get('end', old)
        sched['end'] = new if end >= old else min(end, new)
        if 'T_max' in sched:
            sched['T_max'] = sched['end'] - begin
        refitted.append(sched)
    return refitted


def refit_config(config: str, length: int, out_dir: str) -> str:
    """A config file in ``out_dir`` that inherits ``config`` (a path) and trains ``length``
    epochs (iterations for an iteration-based recipe) with its schedule refitted
    (:func:`refit_schedulers`); the validation and checkpoint intervals follow when they were the
    whole run. Returns its path; ``config`` itself when ``length`` is its own length."""
    cfg = Config.fromfile(config)
    by_epoch = 'max_epochs' in cfg.train_cfg
    key = 'max_epochs' if by_epoch else 'max_iters'
    old = cfg.train_cfg[key]
    if length == old:
        return config
    if length < 1:
        raise ValueError(f'{key} must be >= 1, got {length}')
    train_cfg = {key: length}
    if cfg.train_cfg.get('val_interval', 0) >= old:
        train_cfg['val_interval'] = length
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    lines = [f'# {osp.basename(config)} for {length} {key[4:]} instead of {old}, its schedule '
             'refitted (tools/demo_schedule.py)',
             f'_base_ = [{osp.abspath(config)!r}]',
             f'train_cfg = {train_cfg!r}',
             'param_scheduler = ' + pprint.pformat(
                 refit_schedulers([dict(s) for s in schedulers], old, length, by_epoch))]
    checkpoint: Optional[dict] = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint and checkpoint.get('interval', 1) > length:
        lines.append(f'default_hooks = dict(checkpoint=dict(interval={length}))')
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(config))[0]
    path = osp.join(out_dir, f'{stem}_{length}{key[4]}.py')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path
