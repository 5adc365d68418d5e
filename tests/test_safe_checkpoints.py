"""Checkpoints load weights-only: importing mim_plugins leaves mmengine's loader and torch's
allowlist alone; our loaders read the data classes mmengine writes through restricted stand-ins;
any other pickled object is refused before it can run, with one line naming the file and the
tool that rewrites a trusted file. (Crafted attacks: test_pickle_attacks.py.)"""
import argparse
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, run_env

RESAVE = 'tools/model_converters/resave_weights_only.py'


def mmengine_checkpoint(path) -> dict:
    """What mmengine's runner saves: weights, meta and its message hub (HistoryBuffer objects
    of numpy scalars, a numpy array in the runtime info)."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_safe_checkpoints')
    for step in range(3):
        hub.update_scalar('train/loss', np.float64(1.0 / (step + 1)))
    hub.update_info('seed_array', np.arange(4, dtype=np.int32))
    checkpoint = {'meta': {'epoch': 1, 'iter': 3, 'seed': 0},
                  'state_dict': {'backbone.weight': torch.randn(3, 2)},
                  'message_hub': hub.state_dict()}
    torch.save(checkpoint, path)
    return checkpoint


class Planted:
    """An object whose unpickling touches a file: it must never be unpickled by a load."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path(self.marker).touch, ()


def planted_checkpoint(tmp_path):
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'planted.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'extra': Planted(str(marker)),
                'args': argparse.Namespace(lr=0.1)}, path)
    return path, marker


def test_mmengine_loader_is_mmengine_own():
    import mmengine.runner.checkpoint as mm_checkpoint
    from mmengine.runner.checkpoint import CheckpointLoader

    import mim_plugins  # noqa: F401
    assert CheckpointLoader._schemes[''] is mm_checkpoint.load_from_local


def test_stock_mmengine_checkpoints_load_through_our_loader(tmp_path):
    """A stock mmengine file loads through read_checkpoint's stand-ins, HistoryBuffer statistic
    methods and numpy values included; outside it, torch's own allowlist is untouched."""
    from mmengine.runner.checkpoint import CheckpointLoader

    import mim_plugins  # noqa: F401
    from mim_plugins.engine import read_checkpoint, unsafe_globals
    path = tmp_path / 'epoch_1.pth'
    saved = mmengine_checkpoint(path)
    assert unsafe_globals(str(path)) == []
    loaded = read_checkpoint(str(path))
    assert torch.equal(loaded['state_dict']['backbone.weight'],
                       saved['state_dict']['backbone.weight'])
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert history.mean() == pytest.approx(np.mean([1, 1 / 2, 1 / 3]))
    assert history.min() == pytest.approx(1 / 3)  # its statistic methods came back too
    assert (loaded['message_hub']['runtime_info']['seed_array'] == np.arange(4)).all()
    with pytest.raises(Exception, match='Weights only load failed'):
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_without_our_loader_the_same_file_is_refused(tmp_path):
    """Importing mim_plugins allows nothing: plain torch refuses HistoryBuffer with or without."""
    path = tmp_path / 'epoch_1.pth'
    mmengine_checkpoint(path)
    for prelude in ('', 'import mim_plugins; '):
        result = subprocess.run(
            [sys.executable, '-c',
             f'{prelude}import torch; torch.load({str(path)!r}, weights_only=True)'],
            cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and 'Weights only load failed' in result.stderr


def test_planted_object_is_refused_and_never_runs(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader

    from mim_plugins.apis import explain
    from mim_plugins.engine import unsafe_globals
    path, marker = planted_checkpoint(tmp_path)
    assert any(name.startswith('pathlib') for name in unsafe_globals(str(path)))
    legacy = tmp_path / 'legacy.pth'
    torch.save({'extra': Planted(str(marker))}, legacy, _use_new_zipfile_serialization=False)
    assert any(name.startswith('pathlib') for name in unsafe_globals(str(legacy)))
    torch.save({'w': torch.ones(1)}, legacy, _use_new_zipfile_serialization=False)
    assert unsafe_globals(str(legacy)) == []
    with pytest.raises(Exception) as info:
        CheckpointLoader.load_checkpoint(str(path), map_location='cpu')
    assert not marker.exists()
    message = explain(info.value)
    assert message is not None and '\n' not in message
    assert 'weights-only loader refuses' in message and RESAVE in message


def test_tools_name_the_refused_file_before_building(tmp_path):
    from mim_plugins.apis import UserInputError
    from mim_plugins.apis.common import checkpoint_arg
    path, marker = planted_checkpoint(tmp_path)
    with pytest.raises(UserInputError) as info:
        checkpoint_arg(str(path), 'The')
    message = str(info.value)
    assert message.startswith(f"The checkpoint '{path}' holds Python objects that the "
                              'weights-only loader refuses')
    assert 'pathlib' in message and f'python {RESAVE} {path} NEW.pth' in message
    assert not marker.exists()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes((tmp_path / 'planted.pth').read_bytes()[:100])
    with pytest.raises(UserInputError, match="cannot be read as a PyTorch checkpoint"):
        checkpoint_arg(str(truncated), 'The')


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_resave_rewrites_a_trusted_file(tmp_path):
    path, marker = planted_checkpoint(tmp_path)
    dst = tmp_path / 'safe.pth'
    result = subprocess.run([sys.executable, RESAVE, str(path), str(dst)], cwd=ROOT,
                            env=run_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert marker.exists()  # the explicit, trusted load did run it: the tool says so first
    assert 'weights_only=False' in result.stdout.splitlines()[0]
    assert "dropped checkpoint['args']: argparse.Namespace" in result.stdout
    loaded = torch.load(dst, weights_only=True)
    assert set(loaded) == {'state_dict', 'extra'}  # extra: what touch() returned, None
    assert loaded['extra'] is None and torch.equal(loaded['state_dict']['w'], torch.ones(2))


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_resave_turns_numpy_into_tensors(tmp_path):
    src, dst = tmp_path / 'np.pth', tmp_path / 'out.pth'
    torch.save({'a': np.arange(3.0), 'b': np.float32(2.5), 'c': [1, 'x', None]}, src)
    result = subprocess.run([sys.executable, RESAVE, str(src), str(dst)], cwd=ROOT,
                            env=run_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = torch.load(dst, weights_only=True)
    assert torch.equal(loaded['a'], torch.arange(3.0, dtype=torch.float64))
    assert loaded['b'] == 2.5 and loaded['c'] == [1, 'x', None]
    same = subprocess.run([sys.executable, RESAVE, str(src), str(src)], cwd=ROOT, env=run_env(),
                          capture_output=True, text=True, timeout=300)
    assert same.returncode == 2 and 'is the input file SRC' in same.stderr
