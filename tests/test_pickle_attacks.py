"""No code from a checkpoint runs: crafted pickles (pickle_attacks.py) through torch's loader
after ``import mim_plugins``, through our loaders, through every public tool that reads a
checkpoint, and through ``Runner.from_cfg`` (what ``mim train`` / ``mim test`` do); a stored
config is never executed by ``--resume``; importing the plugin leaves torch's allowlist alone.
Each case asserts that the marker file the payload would create never appears."""
import glob
import json
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_env
from pickle_attacks import ATTACKS, config_payload, write_legacy, write_zip

MAE_CFG = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FT_CFG = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py'
KNN_CFG = 'configs/mae/benchmarks/vit-tiny-p4_1xb250-knn-k20_mnist5k-500.py'
RESAVE = 'tools/model_converters/resave_weights_only.py'


@pytest.fixture
def attack_files(tmp_path):
    """Every attack in the zip and the legacy format: [(file, marker)]."""
    files = []
    for name, build in ATTACKS.items():
        for fmt, write in (('zip', write_zip), ('legacy', write_legacy)):
            marker = str(tmp_path / f'{name}_{fmt}.ran')
            path = str(tmp_path / f'{name}_{fmt}.pth')
            write(path, build(marker))
            files.append((path, marker))
    return files


def test_import_leaves_torch_allowlist_as_it_found_it():
    """torch registers its own tensor subclasses when mmengine imports torch.distributed; after
    the stack is imported, importing mim_plugins adds nothing, and nothing but torch's own."""
    code = ('import collections, torch, mmengine.runner, mmpretrain.models; '
            'torch.serialization.add_safe_globals([collections.deque]); '
            'before = list(torch.serialization.get_safe_globals()); '
            'import mim_plugins, mim_plugins.engine, mim_plugins.apis; '
            'after = list(torch.serialization.get_safe_globals()); '
            'print(before == after, sorted({getattr(g, "__module__", "?").split(".")[0] '
            'for g in after if g is not collections.deque}))')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=run_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split('\n')[-2] in ("True ['torch']", 'True []')


def test_attacks_are_refused_by_torch_after_import_and_by_our_loaders(attack_files):
    import mim_plugins  # noqa: F401
    allowed = set(torch.serialization.get_safe_globals())
    for path, marker in attack_files:
        with pytest.raises(Exception, match='Weights only load failed'):
            torch.load(path, weights_only=True)
        assert not osp.exists(marker), f'{path} ran its payload'
    from mim_plugins.engine import read_checkpoint, unsafe_globals
    for path, marker in attack_files:
        with pytest.raises(Exception, match='Weights only load failed|refused'):
            read_checkpoint(path)
        assert unsafe_globals(path), path
        assert not osp.exists(marker), f'{path} ran its payload'
    assert set(torch.serialization.get_safe_globals()) == allowed  # the loaders left nothing


def test_unsafe_globals_names_the_reach(tmp_path):
    """The weights-only check sees the getattr reach that torch itself would refuse."""
    from mim_plugins.engine import unsafe_globals
    path = str(tmp_path / 'reach.pth')
    write_zip(path, ATTACKS['getattr_exec'](str(tmp_path / 'ran')))
    found = unsafe_globals(path)
    assert len(found) == 1 and found[0].startswith('builtins.getattr(') and '__self__' in found[0]


DRIVER = r'''
import json, runpy, sys
from mim_plugins.apis import explain
main = runpy.run_path(sys.argv[1])['main']
for path in json.loads(sys.argv[3]):
    argv = [a.replace('{CKPT}', path) for a in json.loads(sys.argv[2])]
    try:
        main(argv)
        print('NO ERROR', path)
    except SystemExit as exc:
        print('EXIT', exc.code)
    except BaseException as exc:
        print('ERROR', ((explain(exc) or repr(exc)).splitlines() or [''])[0][:400])
'''


def _tool_cases(tmp_path, data):
    def loaders(*phases):
        # 20 training images: batches of 5, so that an epoch has iterations
        return ['train_dataloader.batch_size=5'] + [
            f'{k}_dataloader.{o}' for k in phases for o in (
                f'dataset.data_root={data}', 'num_workers=0', 'persistent_workers=False')]
    pretrain, finetune = loaders('train'), loaders('train', 'val', 'test')
    work = str(tmp_path / 'work')
    image = sorted(glob.glob(osp.join(data, 'train', '**', '*.png'), recursive=True))[0]
    return {
        'test.py': ('tools/test.py', [FT_CFG, '{CKPT}', '--work-dir', work,
                                      '--cfg-options', *finetune]),
        'train.py --resume': ('tools/train.py', [MAE_CFG, '--work-dir', work, '--resume',
                                                 '{CKPT}', '--cfg-options', *pretrain]),
        'train.py load_from': ('tools/train.py', [MAE_CFG, '--work-dir', work, '--cfg-options',
                                                  'load_from={CKPT}', *pretrain]),
        'init_cfg': ('tools/train.py', [FT_CFG, '--work-dir', work, '--cfg-options',
                                        'model.backbone.init_cfg.checkpoint={CKPT}', *finetune]),
        'knn_probe.py': ('tools/knn_probe.py', [KNN_CFG, '{CKPT}', '--cfg-options',
                                                *loaders('train', 'val')]),
        'vis_mae.py': ('tools/visualization/vis_mae.py',
                       [MAE_CFG, '{CKPT}', image, '--out', str(tmp_path / 'vis.png')]),
        'official_to_mmpretrain.py': ('tools/model_converters/official_to_mmpretrain.py',
                                      ['{CKPT}', str(tmp_path / 'converted.pth')]),
    }


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['test.py', 'train.py --resume', 'train.py load_from',
                                  'init_cfg', 'knn_probe.py', 'vis_mae.py',
                                  'official_to_mmpretrain.py'])
def test_attacks_through_the_tools_run_nothing(tool, tmp_path, tiny_data, attack_files):
    script, argv = _tool_cases(tmp_path, tiny_data)[tool]
    paths = [path for path, _ in attack_files]
    result = subprocess.run([sys.executable, '-c', DRIVER, script, json.dumps(argv),
                             json.dumps(paths)], cwd=ROOT, env=run_env(), capture_output=True,
                            text=True, timeout=900)
    ran = [path for path, marker in attack_files if osp.exists(marker)]
    assert not ran, f'{tool} ran the payload of {ran}'
    lines = [line for line in result.stdout.splitlines()
             if line.startswith(('ERROR', 'EXIT', 'NO ERROR'))]
    assert len(lines) == len(paths), result.stdout[-3000:] + result.stderr[-3000:]
    # each refused as what it is (not failing on something else before the load)
    assert all(line.startswith('ERROR') and re.search('weights[- ]only', line, re.I)
               for line in lines), '\n'.join(lines)


def _tiny_cfg(tmp_path, data, config=MAE_CFG, epochs=1):
    """``config`` on the tiny data, 2 iterations an epoch, as Runner.from_cfg takes it."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.train_dataloader.update(batch_size=10, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = data
    cfg.train_cfg.max_epochs = epochs
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.mark.slow
def test_runner_from_cfg_refuses_attacks_and_never_executes_a_stored_config(tmp_path,
                                                                           tiny_data):
    """The config's own hooks (configs/_base_/mim_runtime.py) guard every entry point (mim train
    builds the runner this way): crafted files are refused while loading, a stored config is
    not executed."""
    from mmengine.runner import Runner
    allowed = set(torch.serialization.get_safe_globals())
    for name in ('getattr_exec', 'globals_swap'):
        marker = tmp_path / f'{name}.ran'
        path = str(tmp_path / f'{name}.pth')
        write_zip(path, ATTACKS[name](str(marker)))
        cfg = _tiny_cfg(tmp_path / name, tiny_data)
        cfg.load_from = path
        with pytest.raises(Exception, match='Weights only load failed'):
            Runner.from_cfg(cfg).train()
        assert not marker.exists()
        # the failed load left the stand-ins allowed (no hook runs after it), not getattr
        left = torch.serialization.get_safe_globals()
        assert getattr not in left and all(not isinstance(g, tuple) or g[0] is not getattr
                                           for g in left)

    marker = tmp_path / 'config.ran'
    payload = str(tmp_path / 'payload.pth')
    config_payload(payload, str(marker))
    cfg = _tiny_cfg(tmp_path / 'resume', tiny_data)
    cfg.update(load_from=payload, resume=True)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.epoch == 1 and not marker.exists()
    assert set(torch.serialization.get_safe_globals()) == allowed  # this run closed the window


@pytest.mark.slow
def test_resume_and_resave_never_execute_a_stored_config(tmp_path, tiny_data):
    marker = tmp_path / 'config.ran'
    payload = str(tmp_path / 'payload.pth')
    config_payload(payload, str(marker))
    loaders = [f'train_dataloader.{o}' for o in (
        f'dataset.data_root={tiny_data}', 'num_workers=0', 'persistent_workers=False',
        'batch_size=10')]
    resumed = subprocess.run(
        [sys.executable, 'tools/train.py', MAE_CFG, '--work-dir', str(tmp_path / 'work'),
         '--resume', payload, '--cfg-options', 'train_cfg.max_epochs=1', *loaders],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 2' in resumed.stdout + resumed.stderr
    assert not marker.exists()

    safe = str(tmp_path / 'safe.pth')
    out = subprocess.run([sys.executable, RESAVE, payload, safe], cwd=ROOT, env=run_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "dropped checkpoint['meta']['config']: config text" in out.stdout
    meta = torch.load(safe, weights_only=True)['meta']
    assert meta == {'epoch': 1, 'iter': 2}
    assert not marker.exists()


def test_resume_guard_reads_gpu_ids_without_executing(tmp_path):
    from mim_plugins.engine.hooks.resume_guard_hook import literal_gpu_ids
    marker = tmp_path / 'ran'
    text = f'open({str(marker)!r}, "w").close()\ngpu_ids = [0, 1]\n'
    assert literal_gpu_ids(text) == [0, 1]
    assert literal_gpu_ids('gpu_ids = list(range(2))\n') is None  # not a literal: not read
    assert literal_gpu_ids('import os') is None and not marker.exists()
