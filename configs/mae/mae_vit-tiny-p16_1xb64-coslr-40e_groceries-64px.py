# MAE pretraining of the demo's small ViT on GroceryStore photos (`make demo-photos`): the 732
# unlabelled train + val photos at 64x64 in 16x16 patches (a 4x4 grid: 16 tokens, 4 visible;
# ViT-tiny's 224 / 16 patch-to-width ratio), the encoder and decoder of the MNIST-5k job, 40
# epochs (440 steps). docs/demo_photos.md has the time and what more would take.
_base_ = [
    '../_base_/models/mae_vit-tiny-p4.py',
    '../_base_/datasets/groceries_mae.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    backbone=dict(img_size=64, patch_size=16),
    neck=dict(num_patches=16, patch_size=16),
    head=dict(patch_size=16))

max_epochs = 40
warmup_epochs = 5
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
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=1))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=64)
