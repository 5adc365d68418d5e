# The learned part learner of the part-discovery evaluation (docs/semmae_stage1.md), on the
# frozen MAE of mae_vit-mini-p4_1xb64-coslr-5e_partscenes-32px.py (32² images, an 8x8 grid).
# The decoder stops at 16² (one upsampling, 32 channels) and batches are 16 (more steps for
# the same compute) to fit a shared 2-core CPU.
# tools/part_learning/eval_parts.py runs it with that MAE's checkpoint and the number of parts.
_base_ = ['../semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py']

data_root = 'data/part_scenes/'
model = dict(
    backbone=dict(arch=dict(embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384),
                  img_size=32,
                  init_cfg=dict(checkpoint='work_dirs/part_eval/mae/epoch_5.pth')),
    num_parts=4,
    decoder=dict(channels=32, num_upsamples=1, mapping_layers=2))
data_preprocessor = dict(mean=[127.5] * 3, std=[64.0] * 3)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=16,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
optim_wrapper = dict(optimizer=dict(lr=2e-3))
max_epochs = 4
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs)
