# BEiT ViT-B/16 300e (../beit_vit-base-p16_8xb256-coslr-300e_in1k.py) with crop-aware decoding:
# LoadImageFromFile + RandomResizedCropAndInterpolationWithTwoPic become one
# RandomResizedCropDecodeWithTwoPic with the same arguments, decoding each JPEG at the largest
# DCT scale that keeps the crop >= 224 px. ColorJitter and the flip, which the stock pipeline
# runs on the whole image before cropping, run on the crop before its two resizes (both views
# get them); contrast is then jittered about the crop's mean instead of the whole image's. The
# random draws come in another order, so a seed gives other boxes than the stock pipeline's,
# from the same distribution (docs/data.md).
_base_ = ['../beit_vit-base-p16_8xb256-coslr-300e_in1k.py']

train_pipeline = [
    dict(type='RandomResizedCropDecodeWithTwoPic', size=224, second_size=112,
         interpolation='bicubic', second_interpolation='lanczos', scale=(0.08, 1.0),
         crop_transforms=[
             dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
             dict(type='RandomFlip', prob=0.5, direction='horizontal'),
         ]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
