# SupMAE ViT-B/16 400e (../supmae_vit-base-p16_8xb512-coslr-400e_in1k.py) with crop-aware
# decoding: LoadImageFromFile + RandomResizedCrop become one RandomResizedCropDecode with the
# same arguments and boxes (see ../../mae/crop_decode/ and docs/data.md).
_base_ = ['../supmae_vit-base-p16_8xb512-coslr-400e_in1k.py']

train_pipeline = [
    dict(type='RandomResizedCropDecode', scale=224, crop_ratio_range=(0.2, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
