# MaskFeat ViT-B/16 300e (../maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py) with crop-aware
# decoding: LoadImageFromFile + RandomResizedCrop become one RandomResizedCropDecode with the
# same arguments and boxes (OpenCV's bicubic resize, as the stock transform's default backend;
# see ../../mae/crop_decode/ and docs/data.md).
_base_ = ['../maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py']

train_pipeline = [
    dict(type='RandomResizedCropDecode', scale=224, crop_ratio_range=(0.5, 1.0),
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
