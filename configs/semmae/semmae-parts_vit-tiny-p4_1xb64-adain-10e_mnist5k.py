# SemMAE stage 1, the learned part learner (docs/semmae_stage1.md), on the demo: the frozen ViT is
# the demo's MAE (configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py; 28² images, 4² patches,
# a 7x7 token grid). Point it at any mmpretrain ViT checkpoint of that architecture:
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/.../epoch_15.pth
# Only the part-token embedding and the decoder train; the checkpoint holds the frozen ViT too,
# so tools/part_learning/write_learned_parts.py needs only this config and that checkpoint.
_base_ = [
    '../_base_/datasets/mnist5k_mae.py',
    'mmpretrain::_base_/default_runtime.py',
    '../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

num_parts = 7
model = dict(
    type='SemMAEPartLearner',
    backbone=dict(
        type='VisionTransformer',
        arch=dict(embed_dims=192, num_layers=6, num_heads=3, feedforward_channels=768),
        img_size=28,
        patch_size=4,
        out_type='raw',
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='work_dirs/demo/mae_pretrain/epoch_15.pth')),
    num_parts=num_parts,
    # Every choice below is ours, not the paper's (docs/semmae_stage1.md lists them).
    embed=dict(hidden=0),
    # softmax over the patches for each part (over the parts at each patch split the scenes of
    # the part-discovery evaluation by colour instead; docs/semmae_stage1.md)
    attention=dict(normalisation='space', temperature=1.0, blur_sigma=0.5),
    decoder=dict(channels=64, num_upsamples=2, mapping_layers=2),
    reconstruction='mse',
    reconstruction_weight=1.0,
    diversity_weight=1.0,
)

# The learner sees whole images, as stage-1 inference does (part maps cover the whole image).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(28, 28), backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))

max_epochs = 10
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='AtomicCheckpointHook', interval=5, max_keep_ckpts=1))
randomness = dict(seed=0, diff_rank_seed=True)
