"""MAE configs (paper recipes and downstream), the checkpoint hand-over from pretraining to the
stock fine-tune / linear-probe backbones, and tools/visualization/vis_mae.py."""
import glob
import importlib.util
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.apis import UserInputError

MAE = ROOT + '/configs/mae/'
BENCH = MAE + 'benchmarks/'
# pretraining config -> (fine-tune, linear probe) configs of the same encoder
PAIRS = {
    f'mae_vit-{arch}_8xb512-coslr-{epochs}e_in1k.py': (
        f'vit-{arch}_8xb128-coslr-{ft_epochs}e_in1k.py',
        f'vit-{arch}_8xb2048-linear-coslr-90e_in1k.py')
    for arch, ft_epochs in (('base-p16', 100), ('large-p16', 50), ('huge-p14', 50))
    for epochs in (800, 1600)
}
PAIRS['mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'] = (
    'vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py',
    'vit-tiny-p4_1xb64-linear-coslr-15e_mnist5k-500.py')
# the same pretraining read from webdataset shards: the same encoder, the same downstream pair
PAIRS['mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k-shards.py'] = PAIRS[
    'mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py']
# the photo job (tools/run_photo_demo.py)
PAIRS['mae_vit-tiny-p16_1xb64-coslr-40e_groceries-64px.py'] = (
    'vit-tiny-p16_1xb64-coslr-10e_groceries-64px.py',
    'vit-tiny-p16_1xb64-linear-coslr-10e_groceries-64px.py')
PAPER = [name for name in PAIRS if 'in1k' in name]
# (width, depth, patch) of each encoder, and the paper's fine-tune recipe
ARCHS = {'base': (768, 12, 16), 'large': (1024, 24, 16), 'huge': (1280, 32, 14)}
FINETUNE = {  # blr, layer decay, drop path, epochs (MAE paper appendix / official FINETUNE.md)
    'base': (5e-4, 0.65, 0.1, 100), 'large': (1e-3, 0.75, 0.2, 50), 'huge': (1e-3, 0.75, 0.3, 50)}


def size_of(name: str) -> str:
    return re.search(r'vit-(base|large|huge)', name).group(1)


def build_on_meta(model_cfg: dict) -> torch.nn.Module:
    """Build without allocating weights: names, shapes and shape-only forwards, even for ViT-H."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    with torch.device('meta'):
        return MODELS.build(model_cfg)


def test_every_pretraining_config_has_its_downstream_pair():
    shipped = {osp.basename(p) for p in glob.glob(MAE + 'mae_*.py')}
    assert shipped == set(PAIRS)
    for fine_tune, probe in PAIRS.values():
        assert osp.isfile(BENCH + fine_tune) and osp.isfile(BENCH + probe)


@pytest.mark.parametrize('name', PAPER)
def test_pretraining_recipe_is_the_papers(name):
    cfg = Config.fromfile(MAE + name)
    width, depth, patch = ARCHS[size_of(name)]
    epochs = int(re.search(r'(\d+)e_in1k', name).group(1))
    assert cfg.model.type == 'MAE' and cfg.model.backbone.mask_ratio == 0.75
    assert cfg.model.head.norm_pix is True
    assert cfg.model.neck.decoder_embed_dim == 512 and cfg.model.neck.decoder_depth == 8
    # 8 GPUs x 512 = 4096 images a step; lr = blr 1.5e-4 x 4096 / 256
    assert cfg.train_dataloader.batch_size == 512 and cfg.auto_scale_lr.base_batch_size == 4096
    opt = cfg.optim_wrapper.optimizer
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # --amp adds mixed precision on GPUs
    assert opt.type == 'AdamW' and opt.lr == pytest.approx(1.5e-4 * 4096 / 256)
    assert tuple(opt.betas) == (0.9, 0.95) and opt.weight_decay == 0.05
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and (warmup.begin, warmup.end) == (0, 40)
    assert cosine.type == 'CosineAnnealingLR' and (cosine.begin, cosine.end) == (40, epochs)
    assert cosine.T_max == epochs - 40 and cfg.train_cfg.max_epochs == epochs
    steps = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert steps == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'PackInputs']
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.scale == 224 and tuple(crop.crop_ratio_range) == (0.2, 1.0)
    assert cfg.train_dataloader.dataset.with_label is False

    # the encoder is the paper's and the decoder fits it: a shape-only forward through the loss
    model = build_on_meta(cfg.model)
    assert model.backbone.embed_dims == width and model.backbone.num_layers == depth
    x = torch.empty(2, 3, 224, 224, device='meta')
    latent, mask, ids_restore = model.backbone(x)
    tokens = (224 // patch)**2
    assert latent.shape == (2, 1 + int(tokens * 0.25), width) and mask.shape == (2, tokens)
    assert model.neck(latent, ids_restore).shape == (2, tokens, patch * patch * 3)


@pytest.mark.parametrize('name', PAPER[::2])
def test_finetune_recipe_is_the_papers(name):
    size = size_of(name)
    cfg = Config.fromfile(BENCH + PAIRS[name][0])
    blr, layer_decay, drop_path, epochs = FINETUNE[size]
    backbone = cfg.model.backbone
    assert backbone.type == 'VisionTransformer' and backbone.drop_path_rate == drop_path
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint='', prefix='backbone.')
    assert backbone.out_type == 'avg_featmap' and backbone.final_norm is False  # global pool
    assert cfg.train_dataloader.batch_size * 8 == 1024 == cfg.auto_scale_lr.base_batch_size
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == pytest.approx(blr * 1024 / 256)
    assert opt.weight_decay == 0.05
    assert cfg.optim_wrapper.constructor == 'LearningRateDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == layer_decay
    assert cfg.train_cfg.max_epochs == epochs and cfg.param_scheduler[0].end == 5
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                                       mode='original')
    assert [(a.type, a.alpha) for a in cfg.model.train_cfg.augments] == [('Mixup', 0.8),
                                                                          ('CutMix', 1.0)]
    steps = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    rand_aug = steps['RandAugment']
    assert (rand_aug.magnitude_level, rand_aug.magnitude_std) == (9, 0.5)
    assert steps['RandomErasing'].erase_prob == 0.25


@pytest.mark.parametrize('name', PAPER[::2])
def test_linear_probe_recipe_is_the_papers(name):
    cfg = Config.fromfile(BENCH + PAIRS[name][1])
    width, depth, _ = ARCHS[size_of(name)]
    backbone = cfg.model.backbone
    assert backbone.type == 'VisionTransformer' and backbone.frozen_stages == depth
    assert backbone.out_type == 'cls_token' and backbone.final_norm is True
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint='', prefix='backbone.')
    # 8 GPUs x 2048 = 16384; LARS lr = blr 0.1 x 16384 / 256, no weight decay
    assert cfg.train_dataloader.batch_size * 8 == 16384 == cfg.auto_scale_lr.base_batch_size
    opt = cfg.optim_wrapper.optimizer
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert opt.type == 'LARS' and opt.lr == pytest.approx(0.1 * 16384 / 256)
    assert opt.weight_decay == 0.0 and cfg.train_cfg.max_epochs == 90
    model = build_on_meta(cfg.model)
    assert not any(p.requires_grad for p in model.backbone.parameters())  # frozen encoder
    assert model.neck.bn.affine is False and model.neck.bn.num_features == width
    assert model.head.layers.head.in_features == width


def encoder_keys(model_cfg: dict) -> dict:
    """name -> shape of the backbone of ``model_cfg`` (built on the meta device)."""
    return {k: v.shape for k, v in build_on_meta(model_cfg).backbone.state_dict().items()}


@pytest.mark.parametrize('name', list(PAIRS))
def test_pretrained_encoder_fills_the_downstream_backbones(name):
    """Every parameter of the stock fine-tune / probe backbone comes from the pretraining
    checkpoint, same shape, except the LayerNorm a global-pool ('avg_featmap') backbone adds
    (ln2): every fine-tune config pools; the photo job's linear probe pools too."""
    pretrained = encoder_keys(Config.fromfile(MAE + name).model)
    for downstream in PAIRS[name]:
        model = Config.fromfile(BENCH + downstream).model
        new = {'ln2.weight', 'ln2.bias'} if model.backbone.out_type == 'avg_featmap' else set()
        wanted = encoder_keys(model)
        assert set(wanted) - set(pretrained) == new, downstream
        assert all(pretrained[k] == shape for k, shape in wanted.items() if k not in new)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_vit_base_checkpoint_loads_through_pretrained_init(tmp_path):
    """The real thing for ViT-B: write a checkpoint from the pretraining model, load it the way
    the downstream configs do, and find every encoder tensor in the stock backbone."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    name = 'mae_vit-base-p16_8xb512-coslr-800e_in1k.py'
    pretrain = MODELS.build(Config.fromfile(MAE + name).model)
    ckpt = tmp_path / 'mae.pth'
    torch.save(dict(state_dict=pretrain.state_dict(), meta={}), ckpt)
    weights = _load_checkpoint_with_prefix('backbone.', str(ckpt))
    del pretrain
    for downstream, new in zip(PAIRS[name], ({'ln2.weight', 'ln2.bias'}, set())):
        cfg = Config.fromfile(BENCH + downstream).model.backbone
        cfg.init_cfg.checkpoint = str(ckpt)
        backbone = MODELS.build(cfg)
        missing, unexpected = backbone.load_state_dict(weights, strict=False)
        assert set(missing) == new, downstream
        assert set(unexpected) == ({'ln1.weight', 'ln1.bias'} if new else set())
        for p in backbone.parameters():
            p.data.zero_()
        backbone.init_weights()  # init_cfg Pretrained, prefix 'backbone.'
        for key, value in backbone.state_dict().items():
            if key not in new:
                assert torch.equal(value, weights[key]), key


# ---- tools/visualization/vis_mae.py ------------------------------------------------------------
TINY_MAE = MAE + 'mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
VIS = ROOT + '/tools/visualization/vis_mae.py'


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised tiny MAE (config above) saved as tools/train.py would, and images."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(TINY_MAE).model)
    model.init_weights()
    root = tmp_path_factory.mktemp('vis')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, root / 'mae.pth')
    encoder_only = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}
    torch.save({'state_dict': encoder_only}, root / 'encoder.pth')
    images = []
    for i in range(2):
        images.append(str(root / f'{i}.png'))
        pixels = np.random.default_rng(i).integers(40, 255, (28, 28), np.uint8)  # never 33
        Image.fromarray(pixels).save(images[-1])
    return root, images


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_vis_mae_draws_the_configs_masks(tiny_checkpoint):
    root, images = tiny_checkpoint
    out = root / 'fig' / 'grid.png'
    result = subprocess.run([sys.executable, VIS, TINY_MAE, str(root / 'mae.pth'), *images,
                             '--out', str(out), '--seed', '1'], cwd=ROOT, env=run_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    fig = np.array(Image.open(out).convert('RGB'))
    assert fig.shape == (14 + 2 * 116 + 4, 4 * 116 + 4, 3)  # 2 rows x 4 columns of 112 px
    for row in range(2):
        top = 14 + 4 + row * 116
        masked = fig[top:top + 112, 4 + 116:4 + 116 + 112]  # the 'masked' column
        # 28 px images drawn at 112 px: a 4 px patch is 16 x 16 px. Removed patches are zero in
        # the normalised space, i.e. the data preprocessor's mean (33.3) after un-normalising
        cells = masked.reshape(7, 16, 7, 16, 3).transpose(0, 2, 1, 3, 4).reshape(49, -1)
        removed = (cells == 33).all(axis=1)
        assert removed.sum() == 49 - 12  # the config's mask ratio: int(49 * 0.25) stay visible
        original = fig[top:top + 112, 4:4 + 112].reshape(7, 16, 7, 16, 3)
        visible = masked.reshape(7, 16, 7, 16, 3).transpose(0, 2, 1, 3, 4).reshape(49, -1)
        kept = original.transpose(0, 2, 1, 3, 4).reshape(49, -1)
        assert (visible[~removed] == kept[~removed]).all()  # visible patches shown unchanged


def load_vis_tool():
    spec = importlib.util.spec_from_file_location('vis_mae', VIS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('case, message', [
    ('encoder-only', 'has no decoder weights'),
    ('fine-tune config', 'not an MAE-family model'),
    ('missing image', "Image '"),
])
def test_vis_mae_bad_input_is_one_clear_error(tiny_checkpoint, case, message):
    root, images = tiny_checkpoint
    config, ckpt = TINY_MAE, str(root / 'mae.pth')
    if case == 'encoder-only':
        ckpt = str(root / 'encoder.pth')
    elif case == 'fine-tune config':
        config = BENCH + PAIRS['mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'][0]
    else:
        images = images + [str(root / 'missing.png')]
    with pytest.raises(UserInputError, match=message) as error:
        load_vis_tool().main([config, ckpt, *images, '--out', str(root / 'x.png')])
    assert 'Fix:' in str(error.value)
    assert not (root / 'x.png').exists()
