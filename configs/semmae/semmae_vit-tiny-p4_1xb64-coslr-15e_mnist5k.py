# SemMAE on the demo: the small MAE ViT of configs/mae (28² images, 4² patches, 7x7 = 49 tokens)
# on MNIST-5k with semantic-guided masks; λ = 1 - ((epoch + 1) / 15)² over the 15 epochs.
# Part maps: one 7x7 8-bit PNG per image under part_root (SemMAE stage 1), see README.md.
_base_ = ['../mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

data_root = 'data/mnist5k/'
part_root = 'data/mnist5k/part_maps/train'
num_parts = 7
mask_ratio = 0.75

model = dict(type='SemMAE', backbone=dict(type='SemMAEViT', mask_ratio=mask_ratio))
data_preprocessor = dict(
    _delete_=True,
    type='MaskingDataPreprocessor',
    preprocessor={{_base_.data_preprocessor}},
    mask_generator=dict(
        type='SemanticPartMaskGenerator', mask_ratio=mask_ratio, lam_schedule='square'))
custom_hooks = _base_.custom_hooks + [dict(type='SemMAELambdaHook')]

# The demo's augmentation (crop only: flipped digits are not digits); the part map follows it.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPartMap', part_root=part_root, img_prefix=data_root + 'train', grid=7,
         num_parts=num_parts),
    dict(type='RandomResizedCropWithPartMap', scale=28, crop_ratio_range=(0.5, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs', algorithm_keys=['part_ids']),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
