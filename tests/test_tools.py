"""tools/train.py, tools/test.py and tools/dist_train.sh on tiny generated data."""
import glob
import json
import math
import re
import os.path as osp
import subprocess
import sys
from typing import List

import pytest
import torch

from conftest import ROOT, run_env

MAE_CFG = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FT_CFG = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py'


def tool(*args, timeout=600):
    result = subprocess.run(list(args), cwd=ROOT, env=run_env(), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def logged_steps(work) -> List[dict]:
    """What the latest run in ``work`` logged per iteration (mmengine's scalars.json)."""
    runs = sorted(glob.glob(str(work / '*' / 'vis_data' / 'scalars.json')))
    with open(runs[-1]) as f:
        return [json.loads(line) for line in f if '"loss"' in line]


def checkpoint_meta(path) -> dict:
    """The epoch and iteration a checkpoint records (read with torch's default weights-only
    loader, no allowlist: our runs write tensors and plain data)."""
    return torch.load(path, map_location='cpu', weights_only=True)['meta']


def pretrain_options(data):
    # 20 train images, batch 10, drop_last: exactly 2 iterations per epoch
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
            'train_dataloader.batch_size=10', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
            'default_hooks.logger.interval=1']


@pytest.mark.slow
def test_train_then_resume_then_finetune_and_test(tmp_path, tiny_data):
    work = tmp_path / 'mae'
    tool(sys.executable, 'tools/train.py', MAE_CFG, '--work-dir', str(work),
               *pretrain_options(tiny_data))
    ckpt = (work / 'last_checkpoint').read_text().strip()
    assert osp.basename(ckpt) == 'epoch_1.pth'
    assert (checkpoint_meta(ckpt)['epoch'], checkpoint_meta(ckpt)['iter']) == (1, 2)
    steps = logged_steps(work)
    assert [s['step'] for s in steps] == [1, 2] and all(math.isfinite(s['loss']) for s in steps)

    # --resume continues from the checkpoint: epoch 2 only (iterations 3 and 4)
    opts = pretrain_options(tiny_data)
    opts[opts.index('train_cfg.max_epochs=1')] = 'train_cfg.max_epochs=2'
    out = tool(sys.executable, 'tools/train.py', MAE_CFG, '--work-dir', str(work), '--resume',
               *opts)
    log = out.stdout + out.stderr
    # the checkpoint report (a log by design): every tensor of the model came from the file
    assert re.search(r"Checkpoint report: loaded (\d+) of the model's \1 tensors\.\n(?!  )", log)
    assert [s['step'] for s in logged_steps(work)] == [3, 4]
    ckpt = (work / 'last_checkpoint').read_text().strip()
    assert osp.basename(ckpt) == 'epoch_2.pth'
    assert (checkpoint_meta(ckpt)['epoch'], checkpoint_meta(ckpt)['iter']) == (2, 4)

    ft = tmp_path / 'ft'
    ft_opts = ['--cfg-options', f'model.backbone.init_cfg.checkpoint={ckpt}',
               'train_dataloader.batch_size=5', 'train_cfg.max_epochs=1',
               'default_hooks.logger.interval=1'] + [
        f'{k}_dataloader.{o}' for k in ('train', 'val', 'test')
        for o in (f'dataset.data_root={tiny_data}', 'num_workers=0', 'persistent_workers=False')]
    out = tool(sys.executable, 'tools/train.py', FT_CFG, '--work-dir', str(ft), *ft_opts)
    log = out.stdout + out.stderr
    assert [s['step'] for s in logged_steps(ft)] == [1, 2]
    # every encoder weight comes from MAE; only the global-pool norm (ln2) is new, as in
    # mmpretrain's own MAE fine-tune recipe (final_norm=False, out_type='avg_featmap')
    assert 'not in the checkpoint, left as initialised (2): ln2.weight, ln2.bias' in log
    ft_ckpt = (ft / 'last_checkpoint').read_text().strip()

    metrics = tmp_path / 'metrics.json'
    out = tool(sys.executable, 'tools/test.py', FT_CFG, ft_ckpt, '--work-dir', str(ft), '--out',
               str(metrics), *ft_opts)
    assert re.search(r"Checkpoint report: loaded (\d+) of the model's \1 tensors\.\n(?!  )",
                     out.stdout + out.stderr)
    acc = json.loads(metrics.read_text())['accuracy/top1']
    # the 10 tiny val images, one per class: the accuracy is a whole number of them
    assert 0.0 <= acc <= 100.0 and abs(acc / 10 - round(acc / 10)) < 1e-6, acc


@pytest.mark.slow
def test_dist_train_launches_two_processes(tmp_path, tiny_data):
    work = tmp_path / 'dist'
    out = tool('bash', 'tools/dist_train.sh', MAE_CFG, '2', '--work-dir', str(work),
               *pretrain_options(tiny_data))
    log = out.stdout + out.stderr
    # mmengine's runtime report names the world size 'GPU number' whatever the device
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log
    # 2 processes share the 20 images: 10 each, batch 10 -> 1 iteration per epoch
    checkpoints = glob.glob(str(work / '*.pth'))
    assert [osp.basename(c) for c in checkpoints] == ['epoch_1.pth']
    assert (checkpoint_meta(checkpoints[0])['epoch'], checkpoint_meta(checkpoints[0])['iter']) \
        == (1, 1)
    assert [s['step'] for s in logged_steps(work)] == [1]
