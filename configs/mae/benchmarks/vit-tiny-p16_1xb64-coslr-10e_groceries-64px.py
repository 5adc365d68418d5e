# Fine-tune the small demo ViT on the 675 labelled GroceryStore train photos (14 classes) at
# 64x64 in 16x16 patches, from an MAE checkpoint given as model.backbone.init_cfg.checkpoint; test
# on the 1,322 test photos. The MNIST-5k fine-tune (vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py)
# with the photo data and 10 epochs (110 steps).
_base_ = [
    '../../_base_/datasets/groceries_cls.py',
    'mmpretrain::_base_/default_runtime.py',
    '../../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=64,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=14,
        in_channels=192,
        topk=(1, 5),
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=2e-5)]))

max_epochs = 10
warmup_epochs = 1
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.75,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, eta_min=1e-6, convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0, diff_rank_seed=True)
