# SemMAE ViT-B/16 800e (../semmae_vit-base-p16_8xb256-coslr-800e_in1k.py) with crop-aware
# decoding: LoadImageFromFile + RandomResizedCropWithPartMap become one RandomResizedCropDecode
# with the same arguments and boxes, which crops the part map with the image's box. The part map
# is loaded FIRST (it only needs the image path), so the crop finds it (see
# ../../mae/crop_decode/ and docs/data.md).
_base_ = ['../semmae_vit-base-p16_8xb256-coslr-800e_in1k.py']

train_pipeline = [
    dict(type='LoadPartMap', part_root=_base_.part_root, img_prefix=_base_.img_prefix,
         grid=_base_.grid, num_parts=_base_.num_parts),
    dict(type='RandomResizedCropDecode', scale=224, crop_ratio_range=(0.2, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlipWithPartMap', prob=0.5),
    dict(type='PackInputs', algorithm_keys=['part_ids']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
