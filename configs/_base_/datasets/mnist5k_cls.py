# MNIST-5k classification: train on the small labelled subset (meta/train_labelled.txt, 50 images
# per class), evaluate on the 1000 val images.
dataset_type = 'CustomDataset'
data_root = 'data/mnist5k/'
data_preprocessor = dict(num_classes=10, mean=[33.3] * 3, std=[78.6] * 3, to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.7, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='ResumableSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train',
                 ann_file='meta/train_labelled.txt', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='val',
                 ann_file='meta/val.txt', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
