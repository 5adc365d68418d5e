# Fine-tune a MaskFeat ViT-B/16 (../maskfeat_vit-base-p16_..., or a bottleneck variant) on
# ImageNet-1k, batch 2048 (8 GPUs x 256), stock VisionTransformer: mmpretrain's MaskFeat recipe
# (100 epochs, 20 warm-up, AdamW lr 8e-3 at 2048, layer decay 0.65, wd 0.05, drop path 0.1,
# RandAug, random erasing 0.25, mixup 0.8, cutmix 1.0, label smoothing 0.1, global pool).
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = [
    'mmpretrain::maskfeat/benchmarks/vit-base-p16_8xb256-coslr-100e_in1k.py',
    '../../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
train_dataloader = dict(
    sampler=dict(type='ResumableSampler'),  # exact mid-epoch resume
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet/',
        data_prefix='train',
        pipeline=_base_.train_pipeline))
# mmpretrain's config merges `type` into its base's `by_epoch`, which mmengine refuses
# ("Only one of `type` or `by_epoch`"): restated whole.
train_cfg = dict(_delete_=True, type='ResumableEpochBasedTrainLoop', max_epochs=100,
                 val_interval=1)

# the resilient runtime (../../_base_/mim_runtime.py): exact resume, safe checkpoints
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
