# MAE pretraining of the small demo ViT on the embedded MNIST-5k (4000 train images, no labels).
# The main job of README.md runs it; ~4.5 min on a 2-core CPU. Batch 64 rather than 256: on
# MNIST the loss sits on a plateau (blurry mean digits) for the first few hundred steps, and
# the smaller batch gives 4x the steps for the same compute.
_base_ = [
    '../_base_/models/mae_vit-tiny-p4.py',
    '../_base_/datasets/mnist5k_mae.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

max_epochs = 15
warmup_epochs = 1
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='AtomicCheckpointHook', interval=5, max_keep_ckpts=1))
train_dataloader = dict(batch_size=64)
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=64)
