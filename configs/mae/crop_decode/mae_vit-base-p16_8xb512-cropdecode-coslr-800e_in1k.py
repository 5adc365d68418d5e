# MAE ViT-B/16 800e (../mae_vit-base-p16_8xb512-coslr-800e_in1k.py) with crop-aware decoding, the
# switch for CPU-bound data loading: LoadImageFromFile + RandomResizedCrop become one
# RandomResizedCropDecode with the same arguments (the same boxes for the same seed) that
# decodes each JPEG at the largest DCT scale keeping the crop >= 224 px and resizes the crop
# straight out of the decoded image. About 2x the images per CPU core; the output differs from
# the stock pipeline's only where a large photo is decoded at a reduced scale (see docs/data.md;
# measure with `python tools/benchmark.py pipeline`).
_base_ = ['../mae_vit-base-p16_8xb512-coslr-800e_in1k.py']

train_pipeline = [
    dict(type='RandomResizedCropDecode', scale=224, crop_ratio_range=(0.2, 1.0),
         backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
