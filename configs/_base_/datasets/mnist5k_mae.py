# MNIST-5k pretraining data (the embedded default; `python tools/prepare_demo_data.py` writes it).
# Images only: the pretraining loss needs no labels. Same code path as ImageNet (CustomDataset).
dataset_type = 'CustomDataset'
data_root = 'data/mnist5k/'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[33.3] * 3, std=[78.6] * 3, to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.5, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='ResumableSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, data_prefix='train', with_label=False,
                 pipeline=train_pipeline))
