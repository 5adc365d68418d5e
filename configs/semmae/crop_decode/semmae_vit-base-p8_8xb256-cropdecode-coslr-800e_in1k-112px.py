# SemMAE at the paper's 112² / 8² patches (../semmae_vit-base-p8_8xb256-coslr-800e_in1k-112px.py)
# with crop-aware decoding, where it saves the most: a crop of >= 224 px (most crops of an
# ImageNet photo) decodes at half scale. LoadImageFromFile + RandomResizedCropWithPartMap become
# one RandomResizedCropDecode with the same arguments and boxes, the part map loaded first (see
# ../../mae/crop_decode/ and docs/data.md).
_base_ = ['../semmae_vit-base-p8_8xb256-coslr-800e_in1k-112px.py']

train_pipeline = [
    dict(type='LoadPartMap', part_root=_base_.part_root, img_prefix=_base_.img_prefix,
         grid=_base_.img_size // _base_.patch_size, num_parts=_base_.num_parts),
    dict(type='RandomResizedCropDecode', scale=_base_.img_size, crop_ratio_range=(0.2, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlipWithPartMap', prob=0.5),
    dict(type='PackInputs', algorithm_keys=['part_ids']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
