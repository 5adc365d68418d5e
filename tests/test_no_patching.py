"""Importing mim_plugins changes nothing in mmengine / mmpretrain / mmseg; the checkpoint report
is opt-in (``CheckpointReportHook``, ``LoadReporter``) and still reports every kind of load."""
import json
import logging
import subprocess
import sys
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.models import VisionTransformer

from conftest import ROOT, run_env
from mim_plugins.apis.train import build_runner, parse_args
from mim_plugins.engine.checkpoint_report import LoadReporter

FINETUNE_CFG = 'configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py'
ARCH = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)

# Run in a fresh interpreter: the functions mim_plugins used to replace, and every function or
# class that the already imported mmengine / mmpretrain / mmseg / mmcv modules hold, before and
# after `import mim_plugins`.
_BEFORE_AND_AFTER = r'''
import json, sys
import mmengine.runner.checkpoint, mmpretrain.models.backbones.beit, mmpretrain.models.utils.embed
try:
    import mmseg.models
except ImportError:  # the lite install profile
    pass
WATCHED = {'mmengine.runner.checkpoint.load_state_dict': mmengine.runner.checkpoint,
           'mmpretrain.models.backbones.beit.resize_relative_position_bias_table':
               mmpretrain.models.backbones.beit,
           'mmpretrain.models.utils.embed.resize_relative_position_bias_table':
               mmpretrain.models.utils.embed}

def name(f):
    return f'{f.__module__}.{f.__qualname__}'

def current(key):
    return getattr(WATCHED[key], key.rsplit('.', 1)[1])

def contents():
    return {(m, a): v for m, module in list(sys.modules.items())
            if m.split('.')[0] in ('mmengine', 'mmpretrain', 'mmseg', 'mmcv')
            for a, v in list(vars(module).items()) if callable(v)}

watched = {k: current(k) for k in WATCHED}
before = contents()
modules = {m for m, _ in before}
import mim_plugins
after = contents()
print(json.dumps(dict(
    names={k: [name(f), name(current(k))] for k, f in watched.items()},
    same={k: current(k) is f for k, f in watched.items()},
    replaced=sorted(f'{m}.{a}' for (m, a), v in before.items() if after.get((m, a)) is not v),
    added=sorted(f'{m}.{a}' for (m, a) in after if m in modules and (m, a) not in before))))
'''


def test_importing_mim_plugins_replaces_nothing_in_other_packages():
    result = subprocess.run([sys.executable, '-c', _BEFORE_AND_AFTER], cwd=ROOT, env=run_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    stock = {'mmengine.runner.checkpoint.load_state_dict':
             'mmengine.runner.checkpoint.load_state_dict',
             'mmpretrain.models.backbones.beit.resize_relative_position_bias_table':
             'mmpretrain.models.utils.embed.resize_relative_position_bias_table',
             'mmpretrain.models.utils.embed.resize_relative_position_bias_table':
             'mmpretrain.models.utils.embed.resize_relative_position_bias_table'}
    assert found['names'] == {k: [v, v] for k, v in stock.items()}  # (before, after)
    assert all(found['same'].values()), found['same']
    assert found['replaced'] == [] and found['added'] == [], found


class LogRecords:
    """The messages logged through mmengine's current logger inside the ``with`` block."""

    def __init__(self, logger: logging.Logger = None):
        self.logger = logger or MMLogger.get_current_instance()
        self.messages = []
        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.messages.append(record.getMessage())

    def __enter__(self) -> 'LogRecords':
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self.handler)

    def reports(self):
        return [m for m in self.messages if m.startswith('Checkpoint report')]


def _pretrained_vit(tmp_path):
    source = VisionTransformer(arch=ARCH, img_size=28, patch_size=7).state_dict()
    del source['layers.0.ln2.bias']
    source['extra.weight'] = torch.ones(2)
    path = str(tmp_path / 'vit.pth')
    torch.save({'state_dict': source}, path)
    return VisionTransformer(arch=ARCH, img_size=28, patch_size=7,
                             init_cfg=dict(type='Pretrained', checkpoint=path))


def test_a_load_reports_only_when_asked_and_the_watch_ends_with_it(tmp_path):
    model = _pretrained_vit(tmp_path)
    hooks = (dict(model._load_state_dict_pre_hooks), dict(model._load_state_dict_post_hooks))
    with LogRecords() as log:
        model.init_weights()
    assert log.reports() == []  # importing mim_plugins alone: mmengine's loader as it is

    model = _pretrained_vit(tmp_path)
    with LogRecords() as log, LoadReporter(model):
        model.init_weights()
        model.load_state_dict(model.state_dict())  # a second load: no longer watched
    total = len(model.state_dict())
    assert log.reports() == [
        f"Checkpoint report: loaded {total - 1} of the model's {total} tensors.\n"
        '  not in the checkpoint, left as initialised (1): layers.0.ln2.bias\n'
        '  in the checkpoint, not used by the model (1): extra.weight']
    assert (len(model._load_state_dict_pre_hooks), len(model._load_state_dict_post_hooks)) == \
        tuple(len(h) for h in hooks)


def test_a_load_into_a_larger_model_is_left_to_that_model():
    backbone = VisionTransformer(arch=ARCH, img_size=28, patch_size=7)
    model = torch.nn.ModuleDict(dict(backbone=backbone))
    state = {k: v for k, v in model.state_dict().items() if k != 'backbone.ln1.weight'}
    with LogRecords() as log, LoadReporter(backbone):
        model.load_state_dict(state, strict=False)
        assert log.reports() == []
        backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()},
                                 strict=False)
    total = len(backbone.state_dict())
    assert log.reports() == [f"Checkpoint report: loaded {total - 1} of the model's {total} "
                             'tensors.\n  not in the checkpoint, left as initialised (1): '
                             'ln1.weight']


@pytest.fixture
def finetune_runner(tmp_path, tiny_data):
    """The fine-tune config through tools/train.py's driver, on the tiny data, from a
    checkpoint pretrained at 14x14 (a 4x4 patch grid, padded: the 7x7 model resizes its
    position embedding) with one encoder tensor missing and one the encoder does not have."""
    cfg = Config.fromfile(f'{ROOT}/{FINETUNE_CFG}')
    pre = dict(cfg.model.backbone, img_size=14, init_cfg=None)
    pre.pop('type')
    source = {f'backbone.{k}': v for k, v in VisionTransformer(**pre).state_dict().items()}
    del source['backbone.layers.1.ln1.bias']
    source['backbone.extra_tokens'] = torch.zeros(1, 2, 192)
    source['head.fc.weight'] = torch.zeros(10, 192)  # not the backbone's: the prefix drops it
    checkpoint = str(tmp_path / 'pretrained.pth')
    torch.save({'state_dict': source}, checkpoint)
    args = parse_args([FINETUNE_CFG, '--work-dir', str(tmp_path / 'work'), '--no-validate',
                       '--cfg-options', f'model.backbone.init_cfg.checkpoint={checkpoint}',
                       f'train_dataloader.dataset.data_root={tiny_data}',
                       'train_dataloader.num_workers=0', 'train_dataloader.batch_size=5',
                       'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
                       f'experiment_name={uuid.uuid4().hex}'])
    return build_runner(args)


def test_the_train_driver_reports_init_cfg_and_checkpoint_loads(finetune_runner, tmp_path):
    runner = finetune_runner
    assert 'CheckpointReportHook' in [type(h).__name__ for h in runner.hooks]
    with LogRecords(runner.logger) as log:
        runner.train()
    backbone_total = len(runner.model.backbone.state_dict())
    assert log.reports() == [
        f"Checkpoint report: loaded {backbone_total - 1} of the model's {backbone_total} "
        'tensors.\n'
        '  not in the checkpoint, left as initialised (1): layers.1.ln1.bias\n'
        '  in the checkpoint, not used by the model (1): extra_tokens\n'
        "  resized to the model's shape and loaded (1): pos_embed"]
    assert runner.model.backbone.pos_embed.shape == (1, 50, 192)

    # load_from / --resume go through Runner.load_checkpoint: the whole model is reported
    state = {k: v for k, v in runner.model.state_dict().items() if not k.startswith('head.')}
    # resized again; the backbone's hooks edit a copy of the dict: the value tells
    state['backbone.pos_embed'] = torch.randn(1, 17, 192)
    state['backbone.patch_embed.projection.bias'] = torch.zeros(7)  # cannot be resized
    checkpoint = str(tmp_path / 'headless.pth')
    torch.save({'state_dict': state, 'meta': {}}, checkpoint)
    with LogRecords(runner.logger) as log:
        runner.load_checkpoint(checkpoint)
    total = len(runner.model.state_dict())
    assert log.reports() == [
        f"Checkpoint report: loaded {total - 3} of the model's {total} tensors.\n"
        '  not in the checkpoint, left as initialised (2): head.fc.weight, head.fc.bias\n'
        '  different shape, not loaded (1): backbone.patch_embed.projection.bias (checkpoint '
        '(7,), model (192,))\n'
        "  resized to the model's shape and loaded (1): backbone.pos_embed"]
