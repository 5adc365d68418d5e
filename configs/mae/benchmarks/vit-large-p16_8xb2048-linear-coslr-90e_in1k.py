# Linear probe of an MAE ViT-L/16 on ImageNet-1k, batch 16384 (8 GPUs x 2048): frozen stock
# VisionTransformer, cls token after the final norm, BatchNorm without affine, linear classifier.
# mmpretrain's config already is the MAE recipe: 90 epochs (10 warm-up), LARS lr 0.1 x 16384 / 256,
# wd 0, momentum 0.9, RandomResizedCrop + flip.
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = [
    'mmpretrain::mae/benchmarks/vit-large-p16_8xb2048-linear-coslr-90e_in1k.py',
    '../../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# Mixed precision comes from the tools' `--amp` flag (AmpOptimWrapper refuses to start without a
# GPU); auto_scale_lr must count the real batch, 16384 (the base config says 1024).
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=_base_.optim_wrapper.optimizer)
auto_scale_lr = dict(base_batch_size=16384)
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
