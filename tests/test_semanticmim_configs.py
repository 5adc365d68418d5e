"""BEiT / MaskFeat / bottleneck configs: the recipes, every mask generator with every framework,
and the hand-over of each pretraining checkpoint to the stock downstream backbones."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from conftest import ROOT
from test_bottleneck import ARCH, GRID, IMG, PATCH, FixedTarget

C = ROOT + '/configs/'
BEIT = C + 'beit/beit_vit-base-p16_8xb256-coslr-300e_in1k.py'
BEIT_BN = C + 'beit/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py'
MASKFEAT = C + 'maskfeat/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py'
MASKFEAT_BN = C + 'maskfeat/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py'
SEPMASK = C + 'maskfeat/maskfeat-bottleneck-sepmask_vit-base-p16_8xb256-coslr-300e_in1k.py'
SEMMAE_BN = C + 'maskfeat/maskfeat-bottleneck-semmae_vit-base-p16_8xb256-coslr-300e_in1k.py'
MAE_BN = C + 'mae/mae-bottleneck_vit-base-p16_8xb512-coslr-800e_in1k.py'

# pretraining config -> its (fine-tune, linear probe) configs
DOWNSTREAM = {
    BEIT: ('beit/benchmarks/beit-base-p16_8xb128-coslr-100e_in1k.py',
           'beit/benchmarks/beit-base-p16_8xb2048-linear-coslr-90e_in1k.py'),
    BEIT_BN: ('beit/benchmarks/beit-bottleneck-base-p16_8xb128-coslr-100e_in1k.py',
              'beit/benchmarks/beit-bottleneck-base-p16_8xb2048-linear-coslr-90e_in1k.py'),
    MASKFEAT: ('maskfeat/benchmarks/vit-base-p16_8xb256-coslr-100e_in1k.py',
               'maskfeat/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'),
    MASKFEAT_BN: ('maskfeat/benchmarks/vit-base-p16-bottleneck_8xb256-coslr-100e_in1k.py',
                  'maskfeat/benchmarks/vit-base-p16-bottleneck_8xb2048-linear-coslr-90e_in1k.py'),
    MAE_BN: ('mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py',
             'mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'),
}


def test_semanticmim_recipes():
    """The ratios and positions of the official SemanticMIM configs (configs/{beit,maskfeat}/
    *_pretrain.py at the commit of tests/fixtures/official): baselines 40%, bottlenecks 60%
    (BEiT) and 80% (MaskFeat), separate masks predicting 60%; BEiT with absolute positions."""
    beit, maskfeat = Config.fromfile(BEIT), Config.fromfile(MASKFEAT)
    ratios = ((beit, 0.4), (maskfeat, 0.4), (Config.fromfile(BEIT_BN), 0.6),
              (Config.fromfile(MASKFEAT_BN), 0.8))
    for cfg, ratio in ratios:
        assert cfg.data_preprocessor.type == 'MaskingDataPreprocessor'
        assert cfg.data_preprocessor.mask_generator == dict(
            type='RandomMaskGenerator', mask_ratio=ratio, grid=14)
        assert cfg.train_cfg.max_epochs == 300 and cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.type == 'OptimWrapper'  # --amp adds mixed precision on GPUs
        assert not any('Mask' in t.type for t in cfg.train_dataloader.dataset.pipeline)
    assert beit.model.backbone.layer_scale_init_value == 0.1
    for path in (BEIT, BEIT_BN):
        backbone = Config.fromfile(path).model.backbone
        assert (backbone.use_abs_pos_emb, backbone.use_rel_pos_bias,
                backbone.use_shared_rel_pos_bias) == (True, False, False)
    assert beit.model.head.num_embed == 8192
    # mmpretrain's DALL-E encoder (its parameters, asked for the predicted patches' ids only)
    assert beit.model.target_generator.type == 'DALLETokenizer'
    assert beit.model.target_generator.init_cfg.checkpoint == 'data/pretrained/dalle_encoder.pth'
    assert maskfeat.model.target_generator == dict(type='HOGGenerator', nbins=9, pool=8,
                                                   gaussian_window=16)
    for path, algo, cls_tokens in ((BEIT_BN, 'BottleneckBEiT', 1),
                                   (MASKFEAT_BN, 'BottleneckMaskFeat', 8)):
        cfg = Config.fromfile(path)
        assert cfg.model.type == algo and cfg.model.backbone.num_cls_tokens == cls_tokens
    sep = Config.fromfile(SEPMASK).data_preprocessor
    assert sep.input_mask_generator.mask_ratio == 0.8 and sep.mask_generator.mask_ratio == 0.6
    sem = Config.fromfile(SEMMAE_BN)
    assert sem.data_preprocessor.mask_generator.type == 'SemanticPartMaskGenerator'
    assert sem.custom_hooks[-1] == dict(type='SemMAELambdaHook')  # after the runtime's hooks
    assert dict(type='NaNGuardHook') in sem.custom_hooks
    mae = Config.fromfile(MAE_BN).model
    assert (mae.type, mae.backbone.type, mae.neck.type) == (
        'BottleneckMAE', 'BottleneckMAEViT', 'BottleneckMAEDecoder')


# ---- every mask generator with every framework -------------------------------------------------
GENERATORS = {
    'random': dict(type='RandomMaskGenerator', mask_ratio=0.75, grid=GRID),
    'block': dict(type='BlockMaskGenerator', mask_ratio=0.5, grid=GRID, min_block=2),
    'semmae': dict(type='SemanticPartMaskGenerator', mask_ratio=0.75, lam_schedule='constant',
                   lam_value=0.5),
}
DECODER = dict(num_patches=16, patch_size=PATCH, embed_dim=32, decoder_embed_dim=16,
               decoder_depth=1, decoder_num_heads=2)
FRAMEWORKS = {
    'beit': dict(type='BEiT', backbone=dict(type='BEiTPretrainViT'),
                 head=dict(type='BEiTV1Head', embed_dims=32, num_embed=16,
                           loss=dict(type='CrossEntropyLoss'))),
    'beit-bottleneck': dict(type='BottleneckBEiT', backbone=dict(type='BottleneckBEiTViT'),
                            head=dict(type='BEiTV1Head', embed_dims=32, num_embed=16,
                                      loss=dict(type='CrossEntropyLoss'))),
    'maskfeat': dict(type='MaskFeat', backbone=dict(type='MaskFeatViT'),
                     neck=dict(type='LinearNeck', in_channels=32, out_channels=108,
                               norm_cfg=None),
                     head=dict(type='MIMHead',
                               loss=dict(type='PixelReconstructionLoss', criterion='L2'))),
    'maskfeat-bottleneck': dict(
        type='BottleneckMaskFeat', backbone=dict(type='BottleneckMaskFeatViT', num_cls_tokens=8),
        neck=dict(type='LinearNeck', in_channels=32, out_channels=108, norm_cfg=None),
        head=dict(type='MIMHead', loss=dict(type='PixelReconstructionLoss', criterion='L2'))),
    'mae-bottleneck': dict(
        type='BottleneckMAE', backbone=dict(type='BottleneckMAEViT'),
        neck=dict(type='BottleneckMAEDecoder', **DECODER),
        head=dict(type='MAEPretrainHead', patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2'))),
    'semmae': dict(
        type='SemMAE', backbone=dict(type='SemMAEViT'),
        neck=dict(type='MAEPretrainDecoder', **DECODER),
        head=dict(type='MAEPretrainHead', patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2'))),
}


@pytest.mark.parametrize('generator', list(GENERATORS))
@pytest.mark.parametrize('name', list(FRAMEWORKS))
def test_every_mask_generator_drives_every_framework(name, generator):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = dict(FRAMEWORKS[name])
    cfg['backbone'] = dict(cfg['backbone'], arch=ARCH, img_size=IMG, patch_size=PATCH)
    two_views = name.startswith('beit')
    preprocessor = dict(type='TwoNormDataPreprocessor', second_mean=[0] * 3, second_std=[1] * 3,
                        mean=[0] * 3, std=[1] * 3) if two_views else \
        dict(type='SelfSupDataPreprocessor', mean=[0] * 3, std=[1] * 3)
    cfg['data_preprocessor'] = dict(type='MaskingDataPreprocessor', preprocessor=preprocessor,
                                    mask_generator=GENERATORS[generator])
    model = MODELS.build(cfg)
    model.init_weights()
    if name.startswith('beit'):
        model.target_generator = FixedTarget(torch.randn(2, 16, GRID, GRID))
    elif name.startswith('maskfeat'):
        model.target_generator = FixedTarget(torch.randn(2, 16, 108))
    images = torch.randint(0, 255, (2, 3, IMG, IMG), dtype=torch.uint8)
    if two_views:  # the batched image and the tokenizer's second view
        images = [images, images]
    data_samples = []
    for i in range(2):
        sample = DataSample()
        sample.set_field(torch.arange(16).view(GRID, GRID) // 4, 'part_ids')  # 4 row parts
        data_samples.append(sample)
    data = model.data_preprocessor(dict(inputs=images, data_samples=data_samples), True)
    masks = torch.stack([s.mask.flatten() for s in data['data_samples']])
    expected = 8 if generator == 'block' else 12
    assert (masks.sum(1) == expected).all()
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0


# ---- checkpoints hand over to the stock downstream backbones ----------------------------------
def shallow(model_cfg) -> dict:
    """ViT-B width, 2 layers: the real names and shapes, affordable on CPU."""
    model_cfg.backbone.arch = dict(embed_dims=768, num_layers=2, num_heads=12,
                                   feedforward_channels=3072)
    if model_cfg.backbone.get('frozen_stages', -1) > 2:
        model_cfg.backbone.frozen_stages = 2
    if (model_cfg.get('neck') or {}).get('type') in ('MAEPretrainDecoder', 'BottleneckMAEDecoder'):
        model_cfg.neck.decoder_depth = 1
    if (model_cfg.get('target_generator') or {}).get('type') in ('DALL-E', 'DALLETokenizer'):
        model_cfg.target_generator = dict(type='HOGGenerator')  # the tokenizer is not saved here
    return model_cfg


@pytest.mark.parametrize('pretrain', list(DOWNSTREAM), ids=osp.basename)
def test_pretrained_encoder_loads_into_stock_downstream_backbones(pretrain, tmp_path):
    init_default_scope('mmpretrain')
    model = MODELS.build(shallow(Config.fromfile(pretrain).model))
    ckpt = tmp_path / 'pretrain.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    del model
    weights = _load_checkpoint_with_prefix('backbone.', str(ckpt))
    left_out = {k for k in weights if k.startswith(('bottleneck_', 'extra_cls_tokens'))}
    if pretrain in (BEIT_BN, MASKFEAT_BN):  # MAE's bottleneck is its decoder, not in backbone.
        assert left_out, 'the bottleneck checkpoint should carry its pretraining-only stack'
    for downstream in DOWNSTREAM[pretrain]:
        cfg = shallow(Config.fromfile(C + downstream).model).backbone
        backbone = MODELS.build(cfg)
        missing, unexpected = backbone.load_state_dict(weights, strict=False)
        # only what the downstream head side adds (global-pool LayerNorm) may be new, and BEiT's
        # relative_position_index, a buffer computed from the window size, not learned
        learned = {k for k in missing if not k.endswith('relative_position_index')}
        assert learned <= {'ln2.weight', 'ln2.bias'}, (downstream, missing)
        if 'rel_pos_bias.relative_position_bias_table' in weights:  # shared -> one per layer
            torch.testing.assert_close(
                backbone.state_dict()['layers.1.attn.relative_position_bias_table'],
                weights['rel_pos_bias.relative_position_bias_table'])
        assert left_out <= set(unexpected)
        for key in ('cls_token', 'layers.1.attn.proj.weight', 'patch_embed.projection.weight'):
            assert torch.equal(backbone.state_dict()[key], weights[key]), key
