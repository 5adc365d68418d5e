# NEW COMBINATION (no paper reports it): SemMAE's semantic-guided masks on the SemanticMIM
# MaskFeat bottleneck (./maskfeat-bottleneck_...). 80% of the patches are masked by part, from
# intra-part (λ = 1) to inter-part (λ = 0) along the 300 epochs (SemMAELambdaHook); the part
# maps of SemMAE's stage 1 (tools/part_learning/learn_parts.py, 14x14, 7 parts) are read
# from data/imagenet/part_maps/train and follow the crop and the flip.
_base_ = ['./maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py']

data_root = 'data/imagenet/'
data_preprocessor = dict(
    mask_generator=dict(_delete_=True, type='SemanticPartMaskGenerator', mask_ratio=0.8,
                        lam_schedule='square'))
custom_hooks = _base_.custom_hooks + [dict(type='SemMAELambdaHook')]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPartMap', part_root=data_root + 'part_maps/train',
         img_prefix=data_root + 'train', grid=14, num_parts=7),
    dict(type='RandomResizedCropWithPartMap', scale=224, crop_ratio_range=(0.5, 1.0),
         interpolation='bicubic'),
    dict(type='RandomFlipWithPartMap', prob=0.5),
    dict(type='PackInputs', algorithm_keys=['part_ids']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
