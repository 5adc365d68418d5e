"""Bad input ends in one clear error naming the problem and the fix."""
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_env
from mim_plugins.apis.errors import explain
from mim_plugins.utils.stack import StackError, check_stack

MAE_CFG = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'


def run_train(*args):
    return subprocess.run([sys.executable, 'tools/train.py', MAE_CFG, *args], cwd=ROOT,
                          env=run_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_missing_data_root_names_key_and_fix(tmp_path):
    result = run_train('--work-dir', str(tmp_path), '--cfg-options',
                       'train_dataloader.dataset.data_root=/no/such/dir')
    assert result.returncode == 2
    assert "The data root '/no/such/dir' set by `train_dataloader.dataset.data_root` does not " \
           'exist' in result.stderr
    assert 'Traceback' not in result.stderr and '--cfg-options' in result.stderr


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_unknown_type_suggests_close_names(tmp_path, tiny_data):
    result = run_train('--work-dir', str(tmp_path), '--cfg-options',
                       f'train_dataloader.dataset.data_root={tiny_data}',
                       'model.neck.type=MAEPretrainDecodr')
    assert result.returncode == 2
    assert "Unknown type 'MAEPretrainDecodr'" in result.stderr
    assert "Did you mean 'MAEPretrainDecoder'" in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_corrupt_image_is_named(tmp_path, tiny_data):
    import shutil
    data = tmp_path / 'data'
    shutil.copytree(tiny_data, data)
    bad = next((data / 'train' / '3').iterdir())
    bad.write_bytes(b'not a png at all')
    result = run_train('--work-dir', str(tmp_path / 'work'), '--cfg-options',
                       f'train_dataloader.dataset.data_root={data}/',
                       'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                       'train_dataloader.batch_size=20')
    assert result.returncode == 2, result.stderr[-2000:]
    assert f'Corrupt or unreadable image {bad}' in result.stderr
    assert 'Traceback' not in result.stderr


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_missing_config_file():
    result = subprocess.run([sys.executable, 'tools/train.py', 'configs/nope.py'], cwd=ROOT,
                            env=run_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Config file 'configs/nope.py' does not exist" in result.stderr


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_amp_without_gpu_is_explained(tmp_path, tiny_data):
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU, --amp is valid here')
    result = run_train('--amp', '--work-dir', str(tmp_path))
    assert result.returncode == 2 and '--amp needs a CUDA GPU' in result.stderr


def test_missing_package_is_explained_in_one_line(monkeypatch):
    """mmcv.ops is optional (test_install_profiles.py); a package both profiles need is not."""
    monkeypatch.setitem(sys.modules, 'mmengine', None)  # makes `import mmengine` fail
    with pytest.raises(StackError) as info:
        check_stack()
    message = str(info.value)
    assert message.startswith('mim_plugins needs `mmengine`, which does not import')
    assert 'Fix: run `' in message and 'make setup' in message and '\n' not in message


def test_unknown_errors_are_not_swallowed():
    assert explain(ValueError('something else')) is None


def test_missing_pretrained_checkpoints_name_their_config_key(tmp_path):
    """A missing tokenizer (BEiT) or encoder checkpoint stops before anything is built."""
    from mmengine.config import Config

    from mim_plugins.apis import UserInputError
    from mim_plugins.apis.checks import check_checkpoints
    beit = Config.fromfile(ROOT + '/configs/beit/beit_vit-base-p16_8xb256-coslr-300e_in1k.py')
    with pytest.raises(UserInputError, match=r"'data/pretrained/dalle_encoder.pth' set by "
                                             r'`model.target_generator.init_cfg.checkpoint`'):
        check_checkpoints(beit)
    torch.save({'state_dict': {}}, tmp_path / 'dalle.pth')
    beit.model.target_generator.init_cfg.checkpoint = str(tmp_path / 'dalle.pth')
    check_checkpoints(beit)  # present: passes
    probe = Config.fromfile(ROOT + '/configs/mae/benchmarks/'
                            'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')
    with pytest.raises(UserInputError, match='model.backbone.init_cfg.checkpoint=/real/path'):
        check_checkpoints(probe)  # mmpretrain's '' placeholder
