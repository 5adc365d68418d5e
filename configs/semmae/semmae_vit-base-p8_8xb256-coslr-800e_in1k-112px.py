# SemMAE pretraining in the paper's setting: 112² images with 8² patches (14x14 = 196 tokens,
# as many as ViT-B/16 at 224²), ViT-B, 800 epochs, mask ratio 0.75. Same recipe as the 224²/16²
# config; only the input size, the patch size and the pixel targets (8x8x3 per patch) change.
# Part maps: one 14x14 8-bit PNG per image under part_root, see README.md.
_base_ = ['./semmae_vit-base-p16_8xb256-coslr-800e_in1k.py']

img_size = 112
patch_size = 8
model = dict(
    backbone=dict(img_size=img_size, patch_size=patch_size),
    neck=dict(num_patches=(img_size // patch_size)**2, patch_size=patch_size),
    head=dict(patch_size=patch_size))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPartMap', part_root={{_base_.part_root}}, img_prefix={{_base_.img_prefix}},
         grid=img_size // patch_size, num_parts={{_base_.num_parts}}),
    dict(type='RandomResizedCropWithPartMap', scale=img_size, crop_ratio_range=(0.2, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlipWithPartMap', prob=0.5),
    dict(type='PackInputs', algorithm_keys=['part_ids']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
