"""Nothing reports a result it did not compute, nothing overwrites its input: tools/test.py
refuses a checkpoint that did not load the model, --resume names a file it cannot resume,
--out is checked before the evaluation, converters refuse DST == SRC (issue 21)."""
import os
import os.path as osp
import runpy

import pytest
import torch

from conftest import ROOT

FT_CFG = osp.join(ROOT, 'configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py')
MAE_CFG = osp.join(ROOT, 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
CONVERTERS = ['tools/model_converters/official_to_mmpretrain.py',
              'tools/model_converters/resave_weights_only.py']


def loader_options(data, phases=('train', 'val', 'test')):
    # 20 training images: batches of 5, so that an epoch has iterations
    return ['train_dataloader.batch_size=5'] + [
        f'{k}_dataloader.{o}' for k in phases for o in (
            f'dataset.data_root={data}', 'num_workers=0', 'persistent_workers=False')]


@pytest.mark.parametrize('converter', CONVERTERS)
@pytest.mark.parametrize('link', ['same path', 'symlink', 'hard link'])
def test_converters_refuse_to_overwrite_their_input(converter, link, tmp_path):
    from mim_plugins.apis import UserInputError
    src = tmp_path / 'src.pth'
    torch.save({'model': {'cls_token': torch.zeros(1, 1, 4)}}, src)
    before = src.read_bytes()
    dst = src if link == 'same path' else tmp_path / 'dst.pth'
    if link == 'symlink':
        dst.symlink_to(src)
    elif link == 'hard link':
        os.link(src, dst)
    main = runpy.run_path(osp.join(ROOT, converter))['main']
    with pytest.raises(UserInputError) as info:
        main([str(src), str(dst)])
    assert str(info.value).startswith(f"DST '{dst}' is the input file SRC '{src}'")
    assert '\n' not in str(info.value) and src.read_bytes() == before


def test_test_py_checks_out_before_evaluating(tmp_path):
    from mim_plugins.apis import UserInputError
    from mim_plugins.apis.test import main
    with pytest.raises(UserInputError, match=r"--out '.*x\.pth': the metrics are written as "
                       'JSON, YAML or pickle'):
        main([FT_CFG, str(tmp_path / 'missing.pth'), '--out', str(tmp_path / 'x.pth')])
    with pytest.raises(UserInputError, match="the folder '.*nowhere' does not exist"):
        main([FT_CFG, str(tmp_path / 'missing.pth'), '--out', str(tmp_path / 'nowhere/m.json')])


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """The fine-tune config's own (random) weights, and a file of another architecture."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    root = tmp_path_factory.mktemp('guards')
    model = MODELS.build(Config.fromfile(FT_CFG).model)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, root / 'own.pth')
    torch.save({'state_dict': {'encoder.weight': torch.ones(4, 4)}, 'meta': {}},
               root / 'other.pth')
    return root / 'own.pth', root / 'other.pth', len(model.state_dict())


@pytest.mark.slow
def test_test_py_refuses_a_checkpoint_that_did_not_load_the_model(tmp_path, tiny_data,
                                                                 checkpoints):
    from mim_plugins.apis import UserInputError
    from mim_plugins.apis.test import main
    own, other, n = checkpoints
    work = ['--work-dir', str(tmp_path / 'work'), '--cfg-options', *loader_options(tiny_data)]
    with pytest.raises(UserInputError) as info:
        main([FT_CFG, str(other), *work])
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f"The checkpoint '{other}' does not hold this model's weights: "
                              f"{n} of the model's {n} tensors are not in it, 0 have another "
                              'shape, and 1 of its tensors are not used by the model')
    assert '--allow-missing-weights' in message
    metrics = main([FT_CFG, str(other), '--allow-missing-weights', *work])  # the rare case
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    metrics = main([FT_CFG, str(own), *work])  # the model's own weights: evaluated
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


@pytest.mark.slow
def test_resume_from_a_file_that_is_no_training_checkpoint(tmp_path, tiny_data, checkpoints):
    from mim_plugins.apis import UserInputError
    from mim_plugins.apis.train import main
    _, other, _ = checkpoints
    with pytest.raises(UserInputError) as info:
        main([MAE_CFG, '--work-dir', str(tmp_path / 'work'), '--resume', str(other),
              '--cfg-options', *loader_options(tiny_data, ('train',))])
    message = str(info.value)
    assert message.startswith(f"Cannot resume from '{other}': it is not a training checkpoint "
                              "(no message_hub, meta['epoch'], meta['iter'])")
    assert '\n' not in message and f'load_from={other}' in message
