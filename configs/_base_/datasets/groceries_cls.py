# GroceryStore photo classification (14 fine classes): train on the 675 labelled train photos of
# the original split, evaluate on its 1,322 test photos (the val and test loaders both read the
# test split: the demo trains without validation, and tools/knn_probe.py takes its queries from
# val_dataloader). 64x64: random crops for training, the centre crop of the short side for tests.
dataset_type = 'CustomDataset'
data_root = 'data/groceries/'
data_preprocessor = dict(
    num_classes=14,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.35, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=64, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='ResumableSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train',
                 ann_file='meta/train.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='test',
                 ann_file='meta/test.txt', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
