"""Importing mim_plugins registers its modules; every one builds from a minimal config."""
import importlib
import inspect
import socket
import tempfile

import pytest
import torch
from mmengine.registry import Registry

import mim_plugins  # noqa: F401


def registered_mim_plugins():
    """(registry, name) for every class that a mim_plugins module registered anywhere."""
    found = set()
    for package in ('mmengine.registry', 'mmpretrain.registry', 'mmseg.registry'):
        for reg in vars(importlib.import_module(package)).values():
            if isinstance(reg, Registry):
                for name, obj in reg.module_dict.items():
                    if inspect.getmodule(obj).__name__.startswith('mim_plugins'):
                        found.add((reg, name))
    return sorted(found, key=lambda x: (x[0].scope, x[0].name, x[1]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def process_group():
    """A 1-process gloo group for wrappers that need one, torn down so later tests run alone."""
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{_free_port()}',
                                         rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


def _ddp_wrapper_cfg():
    return dict(type='CPUDistributedDataParallel',
                module=torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.SyncBatchNorm(2)))


_TINY_ARCH = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)

# name -> minimal config factory; a newly registered module without one fails the test below.
MINIMAL = {
    'CPUDistributedDataParallel': _ddp_wrapper_cfg,
    'RawPixels': lambda: dict(type='RawPixels'),
    # crop-aware JPEG decoding
    'RandomResizedCropDecode': lambda: dict(type='RandomResizedCropDecode', scale=224),
    'RandomResizedCropDecodeWithTwoPic': lambda: dict(
        type='RandomResizedCropDecodeWithTwoPic', size=224, second_size=112),
    'VisibleTokenClsHead': lambda: dict(type='VisibleTokenClsHead', num_classes=10, in_channels=192),
    'SupMAE': lambda: dict(
        type='SupMAE',
        backbone=dict(type='SemMAEViT', arch=_TINY_ARCH, img_size=16, patch_size=4),
        neck=dict(type='MAEPretrainDecoder', num_patches=16, patch_size=4, embed_dim=32,
                  decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=4,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        cls_head=dict(type='VisibleTokenClsHead', num_classes=10, in_channels=32)),
    'LoadPartMap': lambda: dict(type='LoadPartMap', part_root='data/parts',
                                img_prefix='data/train', grid=14, num_parts=7),
    'RandomResizedCropWithPartMap': lambda: dict(type='RandomResizedCropWithPartMap', scale=224),
    'RandomFlipWithPartMap': lambda: dict(type='RandomFlipWithPartMap', prob=0.5),
    'RandomMaskGenerator': lambda: dict(type='RandomMaskGenerator', mask_ratio=0.75, grid=14),
    'SemanticPartMaskGenerator': lambda: dict(type='SemanticPartMaskGenerator', mask_ratio=0.75,
                                              lam_schedule='square'),
    'MaskingDataPreprocessor': lambda: dict(
        type='MaskingDataPreprocessor', preprocessor=dict(type='SelfSupDataPreprocessor'),
        mask_generator=dict(type='RandomMaskGenerator')),
    'SemMAEViT': lambda: dict(type='SemMAEViT', arch=_TINY_ARCH, img_size=28, patch_size=7),
    'SemMAE': lambda: dict(
        type='SemMAE',
        backbone=dict(type='SemMAEViT', arch=_TINY_ARCH, img_size=28, patch_size=7),
        neck=dict(type='MAEPretrainDecoder', num_patches=16, patch_size=7, embed_dim=32,
                  decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', patch_size=7,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2'))),
    'SemMAELambdaHook': lambda: dict(type='SemMAELambdaHook'),
    # resilience: exact resume, safe checkpoints, NaN guard, unreadable images
    'AtomicCheckpointHook': lambda: dict(type='AtomicCheckpointHook', interval=1),
    'NaNGuardHook': lambda: dict(type='NaNGuardHook'),
    'WorkDirLockedRunner': lambda: dict(runner_type='WorkDirLockedRunner',
                                        model=torch.nn.Linear(2, 2), default_scope='mmpretrain',
                                        work_dir=tempfile.mkdtemp(prefix='locked_runner_')),
    'SkippedImagesHook': lambda: dict(type='SkippedImagesHook'),
    'CheckpointReportHook': lambda: dict(type='CheckpointReportHook'),
    'MaskCheckHook': lambda: dict(type='MaskCheckHook'),
    'WeightsOnlyCheckpointHook': lambda: dict(type='WeightsOnlyCheckpointHook'),
    'ResumeGuardHook': lambda: dict(type='ResumeGuardHook'),
    'RequireLoadedWeightsHook': lambda: dict(type='RequireLoadedWeightsHook'),
    'ResumableSampler': lambda: dict(type='ResumableSampler', dataset=list(range(4)), seed=0),
    'ResumableEpochBasedTrainLoop': lambda: dict(
        type='ResumableEpochBasedTrainLoop', runner=None,
        dataloader=torch.utils.data.DataLoader(list(range(4))), max_epochs=1),
    'SkipCorruptImages': lambda: dict(type='SkipCorruptImages', dataset=dict(
        type='CustomDataset', data_root='data/none', with_label=False, lazy_init=True)),
    # streaming webdataset shards
    'ShardDataset': lambda: dict(type='ShardDataset', shards='data/none-{0..1}.tar',
                                 batch_size=2, lazy_init=True),
    'LoadImageFromShard': lambda: dict(type='LoadImageFromShard'),
    'LoadPartMapFromShard': lambda: dict(type='LoadPartMapFromShard', grid=14, num_parts=7),
    'ShardEpochHook': lambda: dict(type='ShardEpochHook'),
    # SemMAE stage 1: the learned part learner
    'PartTokenEmbed': lambda: dict(type='PartTokenEmbed', embed_dims=32, num_parts=7),
    'PartAttention': lambda: dict(type='PartAttention'),
    'AdaINDecoder': lambda: dict(type='AdaINDecoder', num_parts=7, style_dims=32),
    'SemMAEPartLearner': lambda: dict(
        type='SemMAEPartLearner',
        backbone=dict(type='VisionTransformer', arch=_TINY_ARCH, img_size=16, patch_size=4,
                      out_type='raw')),
    # SemanticMIM bottleneck and block masks
    'BlockMaskGenerator': lambda: dict(type='BlockMaskGenerator', mask_ratio=0.4, grid=14),
    'BottleneckMaskFeatViT': lambda: dict(type='BottleneckMaskFeatViT', arch=_TINY_ARCH,
                                          img_size=28, patch_size=7, num_cls_tokens=2),
    'BottleneckBEiTViT': lambda: dict(type='BottleneckBEiTViT', arch=_TINY_ARCH, img_size=28,
                                      patch_size=7),
    'MaskedBEiTViT': lambda: dict(type='MaskedBEiTViT', arch=_TINY_ARCH, img_size=28,
                                  patch_size=7),
    'BottleneckMAEViT': lambda: dict(type='BottleneckMAEViT', arch=_TINY_ARCH, img_size=28,
                                     patch_size=7),
    'BottleneckMAEDecoder': lambda: dict(
        type='BottleneckMAEDecoder', num_patches=16, patch_size=7, embed_dim=32,
        decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
    'BottleneckMAE': lambda: dict(
        type='BottleneckMAE',
        backbone=dict(type='BottleneckMAEViT', arch=_TINY_ARCH, img_size=28, patch_size=7),
        neck=dict(type='BottleneckMAEDecoder', num_patches=16, patch_size=7, embed_dim=32,
                  decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', patch_size=7,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2'))),
    'BottleneckBEiT': lambda: dict(
        type='BottleneckBEiT',
        backbone=dict(type='BottleneckBEiTViT', arch=_TINY_ARCH, img_size=28, patch_size=7),
        head=dict(type='BEiTV1Head', embed_dims=32, num_embed=16,
                  loss=dict(type='CrossEntropyLoss')),
        target_generator=dict(type='HOGGenerator')),
    'BottleneckMaskFeat': lambda: dict(
        type='BottleneckMaskFeat',
        backbone=dict(type='BottleneckMaskFeatViT', arch=_TINY_ARCH, img_size=28, patch_size=7),
        neck=dict(type='LinearNeck', in_channels=32, out_channels=108, norm_cfg=None),
        head=dict(type='MIMHead', loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        target_generator=dict(type='HOGGenerator')),
    'DALLETokenizer': lambda: dict(type='DALLETokenizer', n_hid=4, vocab_size=16),
    'MaskedMaskFeatViT': lambda: dict(type='MaskedMaskFeatViT', arch=_TINY_ARCH, img_size=28,
                                      patch_size=7),
    # MAE-pytorch (pengzhiliang)
    'MAEPytorchViT': lambda: dict(type='MAEPytorchViT', arch=_TINY_ARCH, img_size=28,
                                  patch_size=7),
    'MAEPytorchDecoder': lambda: dict(type='MAEPytorchDecoder', num_patches=16, patch_size=7,
                                      embed_dim=32, decoder_embed_dim=16, decoder_depth=1,
                                      decoder_num_heads=2),
    'MAEPytorchHead': lambda: dict(type='MAEPytorchHead', patch_size=7),
    'MAEPytorch': lambda: dict(
        type='MAEPytorch',
        backbone=dict(type='MAEPytorchViT', arch=_TINY_ARCH, img_size=28, patch_size=7),
        neck=dict(type='MAEPytorchDecoder', num_patches=16, patch_size=7, embed_dim=32,
                  decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPytorchHead', patch_size=7)),
    # one algorithm each, registered under its paper's name too (the same class)
    'MaskedMAE': lambda: dict(MINIMAL['SemMAE'](), type='MaskedMAE'),
    'MaskedBEiT': lambda: dict(MINIMAL['BottleneckBEiT'](), type='MaskedBEiT'),
    'MaskedMaskFeat': lambda: dict(MINIMAL['BottleneckMaskFeat'](), type='MaskedMaskFeat'),
    # segmentation (configs_seg); scoped, whatever default scope an earlier Runner left
    'CheckSegLabels': lambda: dict(type='mmseg.CheckSegLabels', num_classes=150),
    'RandomResizedCropWithSegMap': lambda: dict(type='mmseg.RandomResizedCropWithSegMap',
                                                scale=448),
    'ResizeSegMap': lambda: dict(type='mmseg.ResizeSegMap', size=(100, 100)),
    'MultiClsTokenViT': lambda: dict(type='mmpretrain.MultiClsTokenViT', arch=_TINY_ARCH,
                                     img_size=28, patch_size=7, num_cls_tokens=3),
    'ResizableBEiTViT': lambda: dict(type='mmpretrain.ResizableBEiTViT', arch=_TINY_ARCH,
                                     img_size=28, patch_size=7, use_abs_pos_emb=False,
                                     use_rel_pos_bias=True),
    'BackboneLayerDecayOptimWrapperConstructor': lambda: dict(
        type='mmseg.BackboneLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4)),
        paramwise_cfg=dict(layer_decay_rate=0.65)),
}


def test_every_registered_module_has_a_minimal_config():
    names = {name for _, name in registered_mim_plugins()}
    assert names, 'importing mim_plugins registered nothing'
    assert names <= set(MINIMAL), f'add minimal configs for {names - set(MINIMAL)}'


@pytest.mark.parametrize('registry,name', registered_mim_plugins(),
                         ids=lambda v: v if isinstance(v, str) else f'{v.scope}.{v.name}')
def test_registered_module_builds(registry, name, process_group):
    obj = registry.build(MINIMAL[name]())
    assert type(obj) is registry.get(name)  # an alias name builds its class


def test_cpu_ddp_wrapper_reverts_syncbn_and_trains(process_group):
    from mmengine.registry import MODEL_WRAPPERS
    wrapper = MODEL_WRAPPERS.build(_ddp_wrapper_cfg())
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in wrapper.modules())
    out = wrapper(torch.randn(4, 2))
    out.sum().backward()
    assert wrapper.module[0].weight.grad is not None
