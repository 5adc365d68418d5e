# MaskFeat ViT-B/16 pretraining, 300 epochs on ImageNet-1k, batch 2048 (8 GPUs x 256), the
# baseline recipe of SemanticMIM: mmpretrain's MaskFeat (HOG of 9 bins in 8x8 cells, Gaussian
# window 16, 108 values per 16² patch, L2 on the masked patches; AdamW lr 1.6e-3 at 2048,
# wd 0.05, clip 0.02, 30 warm-up epochs then cosine; RandomResizedCrop (0.5, 1) + flip) with
# SemanticMIM's baseline masks (its configs/maskfeat/maskfeat_baseline_pretrain.py): 40% of the
# 14x14 patches at random (a SimMIM-style generator with 16-px mask patches, i.e. per patch).
# Changed from mmpretrain's config:
#  - masks are drawn by MaskingDataPreprocessor (one line swaps the generator) and read by
#    MaskedMaskFeat (mmpretrain's MaskFeat on given masks, neck and loss on the predicted rows);
#  - mixed precision from the tools' `--amp` flag (AmpOptimWrapper refuses to start on CPU);
#  - images are read from the train/ folder tree without labels.
_base_ = [
    'mmpretrain::maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    '../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

mask_ratio = 0.4
grid = 14  # 224 / 16
data_preprocessor = dict(
    _delete_=True,
    type='MaskingDataPreprocessor',
    preprocessor={{_base_.data_preprocessor}},
    mask_generator=dict(type='RandomMaskGenerator', mask_ratio=mask_ratio, grid=grid))
# MaskFeat reading the preprocessor's masks; the neck and the loss run on the predicted rows only,
# and so does the encoder's last layer (MaskedMaskFeatViT: MaskFeatViT's parameters)
model = dict(type='MaskedMaskFeat', backbone=dict(type='MaskedMaskFeatViT'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.5, 1.0),
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    sampler=dict(type='ResumableSampler'),  # exact mid-epoch resume
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet/',
        data_prefix='train',
        with_label=False,
        pipeline=train_pipeline),
    collate_fn=dict(_delete_=True, type='default_collate'))  # see ../beit's note

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=_base_.optim_wrapper.optimizer,
    clip_grad=_base_.optim_wrapper.clip_grad,
    paramwise_cfg=_base_.optim_wrapper.paramwise_cfg)

# the resilient runtime (../_base_/mim_runtime.py): exact resume, safe checkpoints
train_cfg = dict(type='ResumableEpochBasedTrainLoop')
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
