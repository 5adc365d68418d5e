"""The segmentation demo's driver: one real tiny end-to-end run (2 iterations per run, through
the real tools and mmseg; the slow tier), and its choice of MAE checkpoint (stages replaced)."""
import importlib
import json
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_env


@pytest.fixture
def seg_demo(monkeypatch):
    """tools/run_seg_demo.py as a module (tools/ on the path, as when it runs, for demo_stages)."""
    monkeypatch.syspath_prepend(osp.join(ROOT, 'tools'))
    return importlib.import_module('run_seg_demo')


@pytest.mark.slow
def test_seg_demo_trains_and_tests_both_inits(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(f'{ROOT}/configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        mae = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'mae.pth'
    torch.save({'state_dict': mae.state_dict()}, checkpoint)
    work, data = tmp_path / 'demo', tmp_path / 'seg'
    result = subprocess.run(
        [sys.executable, 'tools/run_seg_demo.py', '--work-dir', str(work), '--checkpoint',
         str(checkpoint), '--seg-data-root', str(data), '--iters', '2', '--num-train', '32',
         '--num-val', '8'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(list((data / 'images' / 'training').glob('*.jpg'))) == 32
    assert len(list((data / 'annotations' / 'validation').glob('*.png'))) == 8
    for protocol, prefix, last in (('UperNet', 'seg_upernet', 'iter_2.pth'),
                                   ('linear probe', 'seg_linear_probe', 'epoch_1.pth')):
        row = re.search(rf'\[demo\] {protocol}\s+([\d.]+)%\s+([\d.]+)%', result.stdout)
        assert row, result.stdout[-2000:]
        for value, init in zip(row.groups(), ('MAE', 'random_init')):
            metrics = json.loads((work / f'{prefix}_{init}' / 'metrics.json').read_text())
            assert abs(metrics['mIoU'] - float(value)) < 0.01 and 0 <= metrics['mIoU'] <= 100
        assert (work / f'{prefix}_MAE' / last).is_file()
    assert f'segmentation starts from the MAE checkpoint {checkpoint}' in result.stdout
    # the MAE run's encoder started from the checkpoint, the random one's did not: 2 small steps
    # later the first is still next to the MAE weights, the second as far as a fresh init
    mae_weights = mae.state_dict()
    # (our runs' checkpoints load with torch's default weights-only loader, no allowlist)
    seg = {init: torch.load(work / f'seg_upernet_{init}' / 'iter_2.pth', map_location='cpu',
                            weights_only=True)['state_dict'] for init in ('MAE', 'random_init')}
    shared = [k for k in mae_weights if k.startswith('backbone.') and k in seg['MAE']
              and seg['MAE'][k].shape == mae_weights[k].shape and mae_weights[k].is_floating_point()]
    assert len(shared) > 10, sorted(seg['MAE'])[:20]
    distance = {init: sum((seg[init][k] - mae_weights[k]).abs().sum().item() for k in shared)
                for init in seg}
    assert distance['MAE'] < 0.1 * distance['random_init'], distance
    assert '=== linear probe from random init (elapsed' in result.stdout  # the stage log


def test_without_a_checkpoint_the_main_jobs_pretraining_runs_first(seg_demo, tmp_path,
                                                                    monkeypatch):
    calls = []
    monkeypatch.setattr(seg_demo, 'prepare_data', lambda stages, root: calls.append('data'))

    def pretrain(config, work_dir, options, epochs):
        calls.append(('pretrain', config, epochs))
        return 'pretrained.pth'

    monkeypatch.setattr(seg_demo, 'pretrain', pretrain)
    monkeypatch.setattr(seg_demo, 'prepare_mnist_seg', lambda *a: {'train': 1, 'val': 1})

    def train_and_test(config, work_dir, options, metric):
        calls.append((options[-1], metric))
        return 50.0

    monkeypatch.setattr(seg_demo, 'train_and_test', train_and_test)
    work = tmp_path / 'demo'
    seg_demo.main(['--work-dir', str(work), '--pretrain-epochs', '1'])
    assert calls[:2] == ['data', ('pretrain', seg_demo.PRETRAIN, 1)]
    assert calls[2:] == [('model.backbone.init_cfg.checkpoint=pretrained.pth', 'mIoU'),
                         ('model.backbone.init_cfg=None', 'mIoU')] * 2  # UperNet, linear probe
    # once the main job has run, its checkpoint is used and nothing is pretrained
    (work / 'mae_pretrain').mkdir(parents=True)
    (work / 'mae_pretrain' / 'epoch_15.pth').write_bytes(b'')
    (work / 'mae_pretrain' / 'last_checkpoint').write_text(
        str(work / 'mae_pretrain' / 'epoch_15.pth'))
    calls.clear()
    seg_demo.main(['--work-dir', str(work)])
    main_job = work / 'mae_pretrain' / 'epoch_15.pth'
    assert calls[0] == (f'model.backbone.init_cfg.checkpoint={main_job}', 'mIoU')
