"""pengzhiliang/MAE-pytorch: our model against the golden outputs of its own code, its
checkpoints converted into our config and into stock mmpretrain backbones, its config trained.

The fixtures (tests/fixtures/official/mae_pytorch_*.pt, see its README) hold its random weights,
inputs, outputs and gradient norms; its code is not needed here.
"""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from conftest import ROOT, run_env
from mim_plugins.fidelity import FixtureError, check
from mim_plugins.fidelity.mae_pytorch import classifier_config, pretrain_config
from mim_plugins.masking import num_masked
from mim_plugins.models import mae_pytorch
from mim_plugins.models.mae_pytorch import count_mask
from mim_plugins.utils.pos_embed import sinusoid_table_1d
from mim_plugins.utils import convert_mae_pytorch as convert
from test_configs import drop_pretrained, shrink

FIXTURES = osp.join(ROOT, 'tests', 'fixtures', 'official')
PRETRAIN = [osp.join(FIXTURES, f'mae_pytorch_tiny{s}.pt') for s in ('', '_layerscale')]
FINETUNE = osp.join(FIXTURES, 'mae_pytorch_finetune_tiny.pt')
TOOL = osp.join(ROOT, 'tools', 'model_converters', 'mae_pytorch_to_mmpretrain.py')
TINY = osp.join(ROOT, 'configs', 'mae', 'mae-pytorch_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
FINETUNE_CONFIG = osp.join(ROOT, 'configs', 'mae', 'benchmarks',
                           'mae-pytorch_vit-base-p16_8xb128-coslr-100e_in1k.py')


def load(path: str) -> dict:
    return torch.load(path, weights_only=True)


def failing(path: str) -> list:
    return [line.name for line in check(path) if not line.ok]


@pytest.mark.parametrize('path', PRETRAIN + [FINETUNE], ids=osp.basename)
def test_matches_its_own_code(path):
    lines = check(path)
    assert [str(line) for line in lines if not line.ok] == []
    names = {line.name for line in lines}
    expected = ({'latent', 'pred', 'target', 'loss', 'grads (rel)', 'grads (who trains)'}
                if 'finetune' not in path else
                {'logits (BEiTViT)', 'logits (VisionTransformer)', 'features (BEiTViT)',
                 'grads (VisionTransformer) (rel)'})
    assert expected <= names


def test_a_2d_table_is_caught(monkeypatch):
    """The official MAE's 2-D sin-cos table in place of MAE-pytorch's 1-D one."""
    def table_2d(num_patches, dims):
        side = int(num_patches**.5)
        return build_2d_sincos_position_embedding(side, dims, cls_token=False)
    assert not torch.allclose(table_2d(16, 48), sinusoid_table_1d(16, 48))
    monkeypatch.setattr(convert, 'sinusoid_table_1d', table_2d)
    assert {'latent', 'pred', 'loss'} <= set(failing(PRETRAIN[0]))


def test_mask_tokens_out_of_order_are_caught(monkeypatch):
    """The decoder's mask-token rows permuted (their table rows no longer in patch order)."""
    original = mae_pytorch.visible_then_masked

    def reversed_masked(tokens, mask_token, table, mask):
        out = original(tokens, mask_token, table, mask)
        visible = tokens.shape[1]
        return torch.cat([out[:, :visible], out[:, visible:].flip(1)], 1)
    monkeypatch.setattr(mae_pytorch, 'visible_then_masked', reversed_masked)
    bad = failing(PRETRAIN[0])
    assert {'pred', 'loss'} <= set(bad) and 'latent' not in bad  # the encoder is unaffected


def test_the_fixture_tells_the_official_mae_target_apart():
    """MAE's target (one mean/var over the whole patch, eps on the variance) is not this one."""
    fx = load(PRETRAIN[0])
    init_default_scope('mmpretrain')
    model = MODELS.build(pretrain_config(fx['official_kwargs'], fx['loss_settings']))
    images, mask = fx['inputs']['images'], fx['inputs']['bool_masked_pos']
    ours = model.head.target(images, mask)
    assert torch.allclose(ours, fx['outputs']['target'], atol=fx['atol'])
    std, mean = (torch.tensor(v).view(1, 3, 1, 1) for v in (model.head.std, model.head.mean))
    raw = mae_pytorch.MAEPytorchHead(patch_size=fx['official_kwargs']['patch_size'],
                                     mean=(0., 0., 0.), std=(1., 1., 1.),
                                     norm_pix=False).target(images * std + mean, mask)
    mae = (raw - raw.mean(-1, keepdim=True)) / (raw.var(-1, keepdim=True) + 1e-6)**.5
    assert (mae - fx['outputs']['target']).abs().max() > 0.1


def test_its_mask_count_is_int_of_ratio_times_patches():
    fx = load(PRETRAIN[1])  # mask ratio 0.6 on 16 patches: its 9, MAE's 10
    mask = fx['inputs']['bool_masked_pos']
    ratio = fx['loss_settings']['mask_ratio']
    drawn = count_mask(50, mask.shape[1], ratio, generator=torch.Generator().manual_seed(0))
    assert set(drawn.sum(1).tolist()) == set(mask.sum(1).tolist()) == {9}
    assert num_masked(mask.shape[1], ratio) == 10
    assert len({tuple(row.tolist()) for row in drawn}) > 40  # random, not one pattern


def convert_file(tmp_path, state_dict: dict, *options: str) -> subprocess.CompletedProcess:
    src = tmp_path / 'src.pth'
    torch.save({'model': state_dict, 'epoch': 3}, src)
    return subprocess.run([sys.executable, TOOL, str(src), str(tmp_path / 'dst.pth'), *options],
                          capture_output=True, text=True, cwd=ROOT, env=run_env(), timeout=300)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
@pytest.mark.parametrize('layout', ['beit', 'vit'])
def test_a_converted_finetuned_checkpoint_gives_its_logits(tmp_path, layout):
    fx = load(FINETUNE)
    done = convert_file(tmp_path, fx['state_dict'], '--layout', layout, '--img-size', '32')
    assert done.returncode == 0, done.stderr
    init_default_scope('mmpretrain')
    model = MODELS.build(classifier_config(fx['official_kwargs'], layout))
    load_checkpoint(model, str(tmp_path / 'dst.pth'), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(fx['inputs']['images'], mode='tensor')
    assert (logits - fx['outputs']['logits']).abs().max() <= fx['atol']
    assert (logits - fx['outputs']['logits']).abs().max() < 1e-5
    with torch.no_grad():  # a changed weight changes the logits: the comparison can fail
        model.head.fc.bias += 1e-3
        assert (model(fx['inputs']['images'], mode='tensor') - logits).abs().min() > 5e-4


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_a_converted_finetuned_checkpoint_gives_its_logits_in_our_finetune_config(tmp_path):
    """The fine-tuning config's model, at the fixture's sizes, is its classifier."""
    fx = load(FINETUNE)
    k = fx['official_kwargs']
    done = convert_file(tmp_path, fx['state_dict'], '--img-size', str(k['img_size']))
    assert done.returncode == 0, done.stderr
    cfg = Config.fromfile(FINETUNE_CONFIG)
    cfg.model.backbone.update(
        arch=dict(embed_dims=k['embed_dim'], num_layers=k['depth'], num_heads=k['num_heads'],
                  feedforward_channels=int(k['embed_dim'] * k['mlp_ratio'])),
        img_size=k['img_size'], patch_size=k['patch_size'],
        layer_scale_init_value=k['init_values'],
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'dst.pth'), prefix='backbone.'))
    cfg.model.head.update(num_classes=k['num_classes'], in_channels=k['embed_dim'])
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    model.init_weights()  # the backbone from the checkpoint, as fine-tuning starts
    model.eval()
    images = fx['inputs']['images']
    with torch.no_grad():
        feats = model.extract_feat(images)[-1]
        load_checkpoint(model, str(tmp_path / 'dst.pth'), strict=True)
        logits = model(images, mode='tensor')
    assert (feats - fx['outputs']['features']).abs().max() <= fx['atol']
    assert (logits - fx['outputs']['logits']).abs().max() <= fx['atol']
    assert not model.backbone.pos_embed.requires_grad  # its table stays fixed


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_a_converted_pretraining_checkpoint_loads_into_our_model_and_stock_backbones(tmp_path):
    fx = load(PRETRAIN[1])
    k = fx['official_kwargs']
    done = convert_file(tmp_path, fx['state_dict'], '--img-size', str(k['img_size']))
    assert done.returncode == 0 and 'layer scale' in done.stdout, done.stderr
    init_default_scope('mmpretrain')
    model = MODELS.build(pretrain_config(k, fx['loss_settings']))
    load_checkpoint(model, str(tmp_path / 'dst.pth'), strict=True)
    images, mask = fx['inputs']['images'], fx['inputs']['bool_masked_pos']
    with torch.no_grad():
        loss = model.loss(images, [DataSample().set_mask(m) for m in mask])['loss']
        everything = model.backbone(images, torch.zeros_like(mask))  # no patch hidden
    assert abs(loss.item() - fx['outputs']['loss'].item()) <= fx['atol']
    # the encoder in stock BEiTViT and VisionTransformer (fine-tuning, probing, UperNet)
    for layout in ('beit', 'vit'):
        out = tmp_path / f'{layout}.pth'
        done = subprocess.run([sys.executable, TOOL, str(tmp_path / 'src.pth'), str(out),
                               '--layout', layout, '--img-size', str(k['img_size'])],
                              capture_output=True, text=True, cwd=ROOT, env=run_env())
        assert done.returncode == 0, done.stderr
        cfg = classifier_config(dict(k, embed_dim=k['encoder_embed_dim'],
                                     depth=k['encoder_depth'], num_heads=k['encoder_num_heads'],
                                     num_classes=10), layout)['backbone']
        stock = MODELS.build(dict(cfg, final_norm=True, out_type='raw'))
        state = torch.load(out, weights_only=True)['state_dict']
        missing, unexpected = stock.load_state_dict(
            {n[9:]: v for n, v in state.items() if n.startswith('backbone.')}, strict=False)
        assert missing == [] and unexpected == []
        with torch.no_grad():
            assert (stock(images)[-1] - everything).abs().max() < 1e-5


@pytest.mark.parametrize('edit, words', [
    (lambda sd: sd.update({'encoder.blocks.0.attn.k_bias': torch.zeros(48)}), 'no counterpart'),
    (lambda sd: sd.update({'encoder.blocks.0.attn.q_bias': torch.zeros(7)}), 'has shape (7,)'),
    (lambda sd: sd.pop('encoder.norm.weight'), 'lacks'),
    (lambda sd: sd.update({'cls_token': torch.zeros(1, 1, 48)}), 'official_to_mmpretrain'),
])
@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_anything_else_is_refused_in_one_line(tmp_path, edit, words):
    state = dict(load(PRETRAIN[0])['state_dict'])
    edit(state)
    done = convert_file(tmp_path, state, '--img-size', '32')
    assert done.returncode == 2 and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / 'dst.pth').exists()


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_a_cls_pooled_classifier_and_converting_in_place_are_refused(tmp_path):
    state = {k: v for k, v in load(FINETUNE)['state_dict'].items() if not k.startswith('fc_norm')}
    state.update({'norm.weight': torch.ones(48), 'norm.bias': torch.zeros(48)})
    done = convert_file(tmp_path, state)
    assert done.returncode == 2 and '--use_cls' in done.stderr
    src = tmp_path / 'src.pth'
    done = subprocess.run([sys.executable, TOOL, str(src), str(src)], capture_output=True,
                          text=True, cwd=ROOT, env=run_env())
    assert done.returncode == 2 and 'is SRC' in done.stderr
    assert torch.load(src, weights_only=True)['model'].keys() == state.keys()  # untouched


def test_a_fixture_with_a_foreign_tensor_is_refused(tmp_path):
    fx = load(PRETRAIN[0])
    fx['state_dict']['encoder.extra'] = torch.zeros(2)
    path = tmp_path / 'bad.pt'
    torch.save(fx, path)
    with pytest.raises(FixtureError, match='no counterpart'):
        check(str(path))


def test_the_table_is_theirs():
    for path in PRETRAIN:
        out = load(path)['outputs']
        assert torch.equal(sinusoid_table_1d(*out['encoder_pos_table'].shape[1:]),
                           out['encoder_pos_table'])
        assert torch.equal(sinusoid_table_1d(*out['decoder_pos_table'].shape[1:]),
                           out['decoder_pos_table'])


def test_the_tiny_config_trains_through_runner_from_cfg(tiny_data, tmp_path):
    """What `mim train` runs: mmengine's Runner.from_cfg on the config file."""
    cfg = Config.fromfile(TINY)
    drop_pretrained(cfg.model)
    shrink(cfg, tiny_data, str(tmp_path))
    runner = Runner.from_cfg(cfg)
    before = runner.model.backbone.layers[0].attn.qkv.weight.detach().clone()
    runner.train()
    assert runner.iter == 2
    assert not torch.equal(before, runner.model.backbone.layers[0].attn.qkv.weight)
    assert not runner.model.backbone.pos_embed.requires_grad
    assert torch.equal(runner.model.backbone.pos_embed, sinusoid_table_1d(49, 192))


@pytest.mark.slow
def test_the_tiny_config_trains_through_tools_train(tiny_data, tmp_path):
    options = [f'train_dataloader.dataset.data_root={tiny_data}',
               'train_dataloader.dataset.indices=4', 'train_dataloader.batch_size=2',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']
    done = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), TINY,
                           '--work-dir', str(tmp_path), '--cfg-options', *options],
                          capture_output=True, text=True, cwd=ROOT, env=run_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '[2/2]' in done.stdout
    saved = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert torch.equal(saved['state_dict']['neck.decoder_pos_embed'], sinusoid_table_1d(49, 128))


def test_the_vitb_config_is_its_readme_command():
    """Its README's pretraining command and run_mae_pretraining.py's defaults (commit 8b3ab30)."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'mae',
                                   'mae-pytorch_vit-base-p16_8xb128-coslr-1600e_in1k.py'))
    assert cfg.model.mask_ratio == 0.75 and cfg.train_dataloader.batch_size == 128
    opt = cfg.optim_wrapper.optimizer
    assert opt.lr == pytest.approx(1.5e-4 * 8 * 128 / 256) and opt.betas == (0.9, 0.95)
    assert opt.weight_decay == 0.05 and opt.eps == 1e-8
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == cosine.begin == 40 and cosine.end == cfg.train_cfg.max_epochs == 1600
    assert cosine.eta_min == 1e-5
    neck = cfg.model.neck
    assert (neck.decoder_embed_dim, neck.decoder_depth, neck.decoder_num_heads) == (384, 4, 6)
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.crop_ratio_range == (0.08, 1.0) and crop.interpolation == 'bilinear'
    assert not any(t.type == 'RandomFlip' for t in cfg.train_dataloader.dataset.pipeline)
    init_default_scope('mmpretrain')
    with torch.device('meta'):
        model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 93_325_440  # its pretrain_mae_base_patch16_224, counted the same way


def test_weight_decay_goes_where_it_puts_it(tmp_path):
    """Its optim_factory: no decay on 1-D tensors, names ending in .bias and the mask token."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(TINY)
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    optim = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay = {id(p): g['weight_decay'] for g in optim.param_groups for p in g['params']}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            assert 'pos_embed' in name
            continue
        theirs = 0. if param.ndim == 1 or name.endswith('.bias') or 'mask_token' in name else 0.05
        assert decay[id(param)] == theirs, name


def test_a_head_that_would_undo_another_normalisation_is_refused():
    cfg = Config.fromfile(TINY)
    init_default_scope('mmpretrain')
    model = dict(cfg.model, data_preprocessor=cfg.data_preprocessor)
    MODELS.build(model)
    model['head'] = dict(model['head'], mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    with pytest.raises(ValueError, match="not the data_preprocessor's"):
        MODELS.build(model)
