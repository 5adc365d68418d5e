# Linear probe of the small demo ViT on the 675 labelled GroceryStore train photos (64x64, 16x16
# patches), tested on the 1,322 test photos: frozen encoder, BatchNorm without affine, linear
# head, LARS (the MNIST-5k probe's protocol). The feature is the mean patch token after the final
# norm rather than the cls token, which MAE's loss never trains.
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
        frozen_stages=6,
        out_type='avg_featmap',
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    neck=dict(type='ClsBatchNormNeck', input_features=192),
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=14,
        in_channels=192,
        topk=(1, 5),
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.01)]))

max_epochs = 10
warmup_epochs = 1
# LARS scales each step by eta=1e-3 times the weight/gradient norm ratio: a 110-step probe
# needs a far larger base lr than MAE's 90-epoch ImageNet recipe (as the MNIST-5k probe).
optim_wrapper = dict(optimizer=dict(type='LARS', lr=32.0, weight_decay=0.0, momentum=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0, diff_rank_seed=True)
