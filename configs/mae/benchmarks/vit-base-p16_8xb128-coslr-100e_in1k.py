# Fine-tune an MAE ViT-B/16 on ImageNet-1k, batch 1024 (8 GPUs x 128), stock VisionTransformer.
# mmpretrain's config already is the MAE recipe (official FINETUNE.md, ViT-B): 100 epochs
# (5 warm-up), AdamW lr 5e-4 x 1024 / 256, layer decay 0.65, wd 0.05, drop path 0.1,
# RandAug (m9, mstd 0.5), random erasing 0.25, mixup 0.8, cutmix 1.0, label smoothing 0.1,
# global pool + LayerNorm.
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = [
    'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py',
    '../../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# Labels from the train/ class folders (sorted folder names = the usual ImageNet class indices),
# so any class-folder data set works, not only one with exactly 1000 classes; val is unchanged.
train_dataloader = dict(
    sampler=dict(type='ResumableSampler'),  # exact mid-epoch resume
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet/',
        data_prefix='train',
        pipeline=_base_.train_pipeline))

# the resilient runtime (../../_base_/mim_runtime.py): exact resume, safe checkpoints
train_cfg = dict(_delete_=True, type='ResumableEpochBasedTrainLoop',
                 max_epochs=_base_.train_cfg.max_epochs,
                 val_interval=_base_.train_cfg.val_interval)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
