# SemMAE pretraining, 224² images with 16² patches (14x14 = 196 tokens): the MAE ViT-B/16 800e
# recipe (../mae, itself mmpretrain's) with semantic-guided masks; only what SemMAE changes is
# set here. Mixed precision: tools/train.py --amp, as for MAE.
# Part maps (SemMAE stage 1): one 14x14 8-bit PNG per image under part_root, see README.md.
_base_ = ['../mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

data_root = 'data/imagenet/'
img_prefix = data_root + 'train'  # images of the 'train' split
part_root = 'data/imagenet/part_maps/train'
num_parts = 7  # K of SemMAE's part learner
grid = 14  # patch grid: img_size / patch_size
mask_ratio = 0.75

# The encoder keeps the visible tokens of the given mask instead of random ones.
model = dict(type='SemMAE', backbone=dict(type='SemMAEViT', mask_ratio=mask_ratio))

# Masks are drawn in the main process (where the epoch, hence λ, is known), after the stock
# normalisation; SemMAELambdaHook moves λ = 1 - ((epoch + 1) / E)² along the epochs.
data_preprocessor = dict(
    _delete_=True,
    type='MaskingDataPreprocessor',
    preprocessor={{_base_.data_preprocessor}},
    mask_generator=dict(
        type='SemanticPartMaskGenerator', mask_ratio=mask_ratio, lam_schedule='square'))
custom_hooks = _base_.custom_hooks + [dict(type='SemMAELambdaHook')]

# MAE's augmentation (RandomResizedCrop scale (0.2, 1) + flip); the part map follows the crop
# and the flip, and is packed for the data preprocessor.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPartMap', part_root=part_root, img_prefix=img_prefix, grid=grid,
         num_parts=num_parts),
    dict(type='RandomResizedCropWithPartMap', scale=224, crop_ratio_range=(0.2, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlipWithPartMap', prob=0.5),
    dict(type='PackInputs', algorithm_keys=['part_ids']),
]
train_dataloader = dict(batch_size=256, dataset=dict(data_root=data_root, pipeline=train_pipeline))

# 8 x 256 = 2048 images per step; MAE's base lr 1.5e-4 scaled linearly by batch / 256.
optim_wrapper = dict(optimizer=dict(lr=1.5e-4 * 2048 / 256))
auto_scale_lr = dict(base_batch_size=2048)
