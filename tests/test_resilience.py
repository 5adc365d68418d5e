"""Each failure ends in one clear error (or, when asked, a logged skip) and loses nothing."""
import errno
import logging
import os
import os.path as osp
import shutil
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmpretrain.registry import HOOKS

from conftest import ROOT, make_part_maps, run_env
from mim_plugins.apis.errors import explain
from mim_plugins.apis.train import build_runner, parse_args
from mim_plugins.engine.checkpoint_report import LoadReporter, checkpoint_report
from mim_plugins.engine.hooks import NonFiniteLossError
from mim_plugins.utils.errors import UserInputError

MAE_CFG = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
SEMMAE_CFG = 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'


@HOOKS.register_module(force=True)
class NaNAtIterHook(Hook):
    """From iteration ``iteration`` on, the inputs are divided by a zero std: the loss is NaN."""

    def __init__(self, iteration: int):
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.iteration:
            runner.model.data_preprocessor.std.zero_()


def options(data, *extra, workers=0, batch=4, epochs=1):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
            f'train_dataloader.batch_size={batch}', f'train_dataloader.num_workers={workers}',
            f'train_dataloader.persistent_workers={workers > 0}',
            f'train_cfg.max_epochs={epochs}', 'default_hooks.logger.interval=1', *extra]


def train(*args, config=MAE_CFG):
    env = run_env()
    env['PYTHONPATH'] = os.pathsep.join([ROOT, osp.join(ROOT, 'tests')])
    return subprocess.run([sys.executable, 'tools/train.py', config, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def one_clear_error(result, *phrases):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('ERROR: ')]
    assert len(errors) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def damaged_data(tmp_path, tiny_data):
    """The tiny data with one truncated PNG and one file of garbage bytes."""
    data = tmp_path / 'data'
    shutil.copytree(tiny_data, data)
    truncated = sorted((data / 'train' / '2').iterdir())[0]
    truncated.write_bytes(truncated.read_bytes()[:60])
    garbage = sorted((data / 'train' / '7').iterdir())[0]
    garbage.write_bytes(b'not an image')
    return f'{data}/', [str(truncated), str(garbage)]


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_unreadable_images_stop_with_the_file_named_by_default(tmp_path, damaged_data):
    data, bad = damaged_data
    result = train('--work-dir', str(tmp_path / 'work'), *options(data, batch=20))
    one_clear_error(result, 'Corrupt or unreadable image', 'Fix:')
    assert any(path in result.stderr for path in bad)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_skip_corrupt_images_skips_counts_and_lists_them(tmp_path, damaged_data):
    data, bad = damaged_data
    work = tmp_path / 'work'
    # 2 workers: the skipped paths travel with the batches to the main process
    result = train('--work-dir', str(work), '--skip-corrupt-images',
                   *options(data, workers=2, epochs=2))
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout
    for epoch in (1, 2):
        assert f'Epoch {epoch}: skipped 2 unreadable images ({2 * epoch} so far' in log
    assert 'Epoch(train) [2][5/5]' in log  # every batch of both epochs was full
    listed = (work / 'skipped_images.txt').read_text().split('\n')
    assert sorted(line.split('\t')[1] for line in listed if line) == sorted(bad * 2)


@pytest.mark.parametrize('damage,phrases', [
    ('missing', ['No part map for image', 'does not exist', 'Fix:']),
    ('wrong grid', ['expected uint8 (7, 7)', "the encoder's patch grid", 'Fix:']),
])
@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_part_map_problems_are_one_clear_error_from_a_worker(tmp_path, tiny_data, damage,
                                                            phrases):
    parts = make_part_maps(osp.join(tiny_data, 'train'), str(tmp_path / 'parts'), 7, 7)
    victim = sorted((tmp_path / 'parts' / '4').iterdir())[0]
    if damage == 'missing':
        victim.unlink()
    else:
        from mim_plugins.datasets import save_part_map
        save_part_map(str(victim), torch.zeros(14, 14, dtype=torch.uint8).numpy())
    pipeline = 'train_dataloader.dataset.pipeline'
    result = train('--work-dir', str(tmp_path / 'work'),
                   *options(tiny_data, f'{pipeline}.1.part_root={parts}',
                            f'{pipeline}.1.img_prefix={tiny_data}train', workers=2, batch=20),
                   config=SEMMAE_CFG)
    error = one_clear_error(result, *phrases)
    assert osp.join('train', '4', victim.name) in error


def in_process_runner(tmp_path, data, *extra):
    args = parse_args([MAE_CFG, '--work-dir', str(tmp_path / 'work'),
                       *options(data, f'experiment_name={uuid.uuid4().hex}', *extra)])
    return build_runner(args)


@pytest.mark.parametrize('option,phrases', [
    ('model.backbone.mask_ration=0.5',
     ["Unknown config key 'mask_ration' for MAEViT", "Did you mean 'mask_ratio'", 'Fix:']),
    ('train_dataloader.batchsize=4',
     ["Unknown config key 'batchsize' for DataLoader", "'batch_size'"]),
    ('default_hooks.checkpoint.type=CheckpoinHook',
     ["Unknown type 'CheckpoinHook'", "Did you mean 'CheckpointHook'"]),
])
def test_unknown_config_keys_and_types_are_explained(tmp_path, tiny_data, option, phrases):
    with pytest.raises(Exception) as err:
        in_process_runner(tmp_path, tiny_data, option).train()
    message = explain(err.value)
    assert message is not None, repr(err.value)
    for phrase in phrases:
        assert phrase in message, message


def test_checkpoint_report_lists_missing_unused_and_mis_shaped_keys(tmp_path):
    from mmpretrain.models import VisionTransformer
    arch = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)
    source = VisionTransformer(arch=arch, img_size=28, patch_size=7).state_dict()
    source['backbone_extra.weight'] = torch.ones(3)
    del source['ln1.bias']
    source['pos_embed'] = torch.ones(1, 50, 32)  # a 7x7 grid: mmpretrain resizes it to 4x4
    source['patch_embed.projection.bias'] = torch.ones(5)  # a real mismatch
    ckpt = tmp_path / 'src.pth'
    torch.save({'state_dict': source}, ckpt)

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model = VisionTransformer(arch=arch, img_size=28, patch_size=7,
                                  init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
        with LoadReporter(model):
            model.init_weights()  # not fatal
    finally:
        logger.removeHandler(handler)
    report = next(r.getMessage() for r in records if 'Checkpoint report' in r.getMessage())
    total = len(model.state_dict())
    assert f'loaded {total - 2} of the model\'s {total} tensors' in report, report
    assert 'not in the checkpoint, left as initialised (1): ln1.bias' in report
    assert 'in the checkpoint, not used by the model (1): backbone_extra.weight' in report
    assert 'different shape, not loaded (1): patch_embed.projection.bias (checkpoint (5,), ' \
           'model (32,))' in report
    assert 'resized to the model\'s shape and loaded (1): pos_embed' in report
    torch.testing.assert_close(model.pos_embed, torch.ones(1, 17, 32))
    assert torch.equal(model.layers[0].attn.qkv.weight, source['layers.0.attn.qkv.weight'])
    # long lists are grouped by their first name component
    many = {f'neck.block{i}.w': torch.zeros(1) for i in range(12)}
    assert 'neck.* (12)' in checkpoint_report({}, many)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_nan_loss_stops_naming_the_iteration_and_the_last_good_checkpoint(tmp_path, tiny_data):
    cfg = Config.fromfile(osp.join(ROOT, MAE_CFG))
    cfg.custom_imports.imports.append('test_resilience')
    cfg.custom_hooks.append(dict(type='NaNAtIterHook', iteration=3))  # beside the config's guard
    config = str(tmp_path / 'nan.py')
    cfg.dump(config)
    work = tmp_path / 'work'
    result = train('--work-dir', str(work),
                   *options(tiny_data, 'default_hooks.checkpoint.by_epoch=False',
                            'default_hooks.checkpoint.interval=1'), config=config)
    good = str(work / 'iter_2.pth')
    one_clear_error(result, f'loss became NaN at iteration 3; last good checkpoint: {good}',
                    f'--resume {good}')
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']  # NaN weights not saved
    state = torch.load(good, map_location='cpu', weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values())


def test_disk_full_while_saving_keeps_the_previous_checkpoint(tmp_path, tiny_data, monkeypatch):
    runner = in_process_runner(tmp_path, tiny_data, 'default_hooks.checkpoint.by_epoch=False',
                               'default_hooks.checkpoint.interval=1')
    work = tmp_path / 'work'
    put, saves = LocalBackend.put, []

    def put_until_full(self, obj, filepath):
        if str(filepath).endswith('.pth.tmp'):
            saves.append(filepath)
            if len(saves) == 3:  # the third checkpoint: half written, then the disk is full
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put_until_full)
    with pytest.raises(UserInputError) as err:
        runner.train()
    good = str(work / 'iter_2.pth')
    assert f"No space left on the device while saving checkpoint '{work / 'iter_3.pth'}' " \
           f"(iteration 3); the previous checkpoint '{good}' is intact. Fix: free space" \
           in str(err.value)
    assert explain(err.value) == str(err.value)
    # max_keep_ckpts=1: the stock hook deletes iter_2.pth before writing iter_3.pth
    assert sorted(os.listdir(work)) == sorted(['iter_2.pth', 'last_checkpoint'] + [
        d for d in os.listdir(work) if osp.isdir(work / d) or d.endswith('.py')
        or d == '.train.lock'])  # WorkDirLockedRunner's
    assert (work / 'last_checkpoint').read_text() == good
    checkpoint = torch.load(good, map_location='cpu', weights_only=False)
    assert checkpoint['meta']['iter'] == 2
    assert runner.message_hub.get_info('last_ckpt') == good


def test_disk_full_at_the_first_checkpoint_says_none_exists(tmp_path, tiny_data, monkeypatch):
    runner = in_process_runner(tmp_path, tiny_data, 'default_hooks.checkpoint.by_epoch=False',
                               'default_hooks.checkpoint.interval=1')

    def full(self, obj, filepath):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(filepath))

    monkeypatch.setattr(LocalBackend, 'put', full)
    with pytest.raises(UserInputError) as err:
        runner.train()
    assert f"saving checkpoint '{tmp_path / 'work' / 'iter_1.pth'}' (iteration 1); no earlier " \
           'checkpoint exists. Fix: free space' in str(err.value)


def test_nan_guard_names_infinite_losses_and_a_run_without_checkpoint():
    from types import SimpleNamespace

    from mmengine.logging import MessageHub
    from mim_plugins.engine.hooks import NaNGuardHook
    runner = SimpleNamespace(iter=6, message_hub=MessageHub(f'nan_{uuid.uuid4().hex}'))
    hook = NaNGuardHook()
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.0), acc=torch.tensor(1.)))
    with pytest.raises(NonFiniteLossError) as err:
        hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(float('inf')),
                                                       loss_cls=torch.tensor(float('inf'))))
    assert str(err.value).startswith('loss became infinite at iteration 7; no checkpoint was '
                                     'saved before it. Non-finite: loss, loss_cls.')


def test_train_py_wraps_the_training_set_to_name_or_skip_unreadable_images():
    from mim_plugins.apis.train import guard_images
    cfg = Config(dict(
        default_scope='mmpretrain',
        train_dataloader=dict(dataset=dict(type='CustomDataset', data_root='x')),
        custom_hooks=[dict(type='SemMAELambdaHook')]))
    guard_images(cfg, skip=False)  # no flag: name the file, stop
    assert cfg.train_dataloader.dataset == dict(
        type='SkipCorruptImages', dataset=dict(type='CustomDataset', data_root='x'), skip=False)
    assert [h['type'] for h in cfg.custom_hooks] == ['SemMAELambdaHook']
    guard_images(cfg, skip=True)  # --skip-corrupt-images: not wrapped twice, counted
    assert cfg.train_dataloader.dataset.dataset.type == 'CustomDataset'
    assert cfg.train_dataloader.dataset.skip is True
    assert [h['type'] for h in cfg.custom_hooks] == ['SemMAELambdaHook', 'SkippedImagesHook']
    shards = Config(dict(default_scope='mmpretrain',
                         train_dataloader=dict(dataset=dict(type='ShardDataset'))))
    guard_images(shards, skip=True)  # a stream skips in place: no index-shifting wrapper
    assert shards.train_dataloader.dataset == dict(type='ShardDataset', skip_corrupt=True)
    # segmentation data sets are left as they are; skipping there is refused in one line
    seg = Config(dict(default_scope='mmseg',
                      train_dataloader=dict(dataset=dict(type='ADE20KDataset'))))
    guard_images(seg, skip=False)
    assert seg.train_dataloader.dataset == dict(type='ADE20KDataset')
    with pytest.raises(UserInputError, match='--skip-corrupt-images works with the mmpretrain'):
        guard_images(seg, skip=True)
