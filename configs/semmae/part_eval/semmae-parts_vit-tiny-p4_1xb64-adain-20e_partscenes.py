# The learned part learner of the part-discovery evaluation (docs/semmae_stage1.md), on the
# frozen MAE of mae_vit-tiny-p4_1xb64-coslr-20e_partscenes.py (40² images, a 10x10 grid).
# tools/part_learning/eval_parts.py runs it with that MAE's checkpoint and the number of parts.
_base_ = ['../semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py']

data_root = 'data/part_scenes/'
model = dict(
    backbone=dict(img_size=40,
                  init_cfg=dict(checkpoint='work_dirs/part_eval/mae/epoch_20.pth')),
    num_parts=4)
data_preprocessor = dict(mean=[127.5] * 3, std=[64.0] * 3)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(40, 40), backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
max_epochs = 20
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0,
                        end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(max_epochs=max_epochs)
