"""A mask ratio outside (0, 1), or not a number, is one clear error when the model is built
(issue 21, item 5), for our generators and backbones and for stock mmpretrain ``MAEViT``."""
import math
import uuid

import pytest
from mmengine.registry import init_default_scope

from test_resilience import MAE_CFG, SEMMAE_CFG, options, one_clear_error, train
from mim_plugins.apis.errors import explain
from mim_plugins.apis.train import build_runner, parse_args
from mim_plugins.models.mask_ratio import check_mask_ratio
from mim_plugins.utils.errors import UserInputError

BAD = [1.5, -0.1, 1.0, 0.0, '0.75', math.nan, math.inf, True, None]
TINY_VIT = dict(arch=dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64),
                img_size=28, patch_size=4)


@pytest.mark.parametrize('value', BAD)
def test_check_mask_ratio_names_value_key_and_range(value):
    with pytest.raises(UserInputError) as info:
        check_mask_ratio(value, 'model.backbone.mask_ratio')
    message = str(info.value)
    assert f'model.backbone.mask_ratio = {value!r}' in message
    assert '0 < r < 1' in message and 'Fix:' in message and '\n' not in message
    if isinstance(value, str):
        assert 'a str' in message


@pytest.mark.parametrize('value', [0.75, 0.01, 0.99, 3 / 4])
def test_check_mask_ratio_accepts_numbers_inside(value):
    assert check_mask_ratio(value, 'x') == value


@pytest.mark.parametrize('cfg,key', [
    (dict(type='RandomMaskGenerator', grid=7), 'mask_ratio of RandomMaskGenerator'),
    (dict(type='BlockMaskGenerator', grid=7), 'mask_ratio of BlockMaskGenerator'),
    (dict(type='SemanticPartMaskGenerator'), 'mask_ratio of SemanticPartMaskGenerator'),
    (dict(type='SemMAEViT', **TINY_VIT), 'model.backbone.mask_ratio'),
    (dict(type='BottleneckMAEViT', **TINY_VIT), 'model.backbone.mask_ratio'),
])
@pytest.mark.parametrize('value', [1.5, -0.1, 1.0, '0.75'])
def test_our_generators_and_backbones_refuse_a_bad_ratio_when_built(cfg, key, value):
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    MODELS.build(dict(cfg, mask_ratio=0.5))  # the same config with a valid ratio builds
    with pytest.raises(UserInputError, match=f'{key}.* = {value!r}.*0 < r < 1'):
        MODELS.build(dict(cfg, mask_ratio=value))


@pytest.mark.parametrize('config', [MAE_CFG, SEMMAE_CFG])
@pytest.mark.parametrize('value', [1.5, -0.1, 1.0, '0.75'])
def test_train_refuses_a_bad_backbone_ratio_before_training(tmp_path, tiny_data, config, value):
    """Stock MAE (MAEViT, built without our code: the config's MaskCheckHook refuses it before
    the first step) and SemMAE (refused when built), through tools/train.py's runner."""
    from mim_plugins.apis.common import load_config
    args = parse_args([config, '--work-dir', str(tmp_path / 'work'),
                       *options(tiny_data, f'experiment_name={uuid.uuid4().hex}')])
    cfg = load_config(args)
    cfg.model.backbone.mask_ratio = value
    with pytest.raises(UserInputError) as info:
        build_runner(args, cfg).train()
    assert f'model.backbone.mask_ratio = {value!r}' in explain(info.value)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_train_cli_says_one_line_for_a_stock_mae_ratio_of_one(tmp_path, tiny_data):
    result = train('--work-dir', str(tmp_path / 'work'),
                   *options(tiny_data, 'model.backbone.mask_ratio=1.0'))
    error = one_clear_error(result, 'model.backbone.mask_ratio = 1.0', '0 < r < 1', 'Fix:')
    assert 'Epoch(train)' not in result.stdout, error
