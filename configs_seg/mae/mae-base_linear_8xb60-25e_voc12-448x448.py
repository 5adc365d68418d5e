# Linear probing on PascalVOC 2012 of an MAE ViT-B/16 (../../configs/mae): the Leopart protocol
# as SemanticMIM runs it. The encoder is frozen; the patch tokens of block 8 of 12 (SemanticMIM's
# default layer, -5) go through one 1x1 convolution to the 21 classes. Inputs 448x448
# (RandomResizedCrop of 0.8-1 of the image + flip), training loss on 100x100 masks (the label map
# nearest-resized; the logits bilinearly upsampled to it), evaluation on 448x448 masks (the label
# map nearest-resized, as Leopart), mIoU over the 21 classes with mmseg's IoUMetric (255 =
# object borders, ignored). SGD momentum 0.9, wd 1e-4, lr 0.01 per 60 images (0.08 at
# 8 GPUs x 60), x0.1 every 10 epochs, 25 epochs.
# SemanticMIM upsamples the features, then applies the 1x1 conv; mmseg applies it, then
# upsamples the logits: the same function (both maps are linear, bilinear weights sum to 1).
# To probe another block: --cfg-options model.backbone.out_indices=[11] (0-based block index).
_base_ = [
    '../_base_/datasets/pascal_voc12.py', '../_base_/default_runtime.py',
    '../../configs/_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

crop_size = (448, 448)
num_classes = 21
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmpretrain.VisionTransformer',
        arch='base',
        img_size=448,
        patch_size=16,
        out_type='featmap',
        out_indices=[7],
        final_norm=False,
        frozen_stages=12,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='work_dirs/mae_vit-base-p16_8xb512-coslr-1600e_in1k/epoch_1600.pth')),
    # FCNHead without convolutions is its classifier alone: a 1x1 conv (init N(0, 0.01), as
    # SemanticMIM's), no dropout, no norm
    decode_head=dict(
        type='FCNHead',
        in_channels=768,
        channels=768,
        num_convs=0,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=num_classes,
        norm_cfg=None,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

label_check = dict(type='CheckSegLabels', num_classes=num_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    label_check,
    dict(type='RandomResizedCropWithSegMap', scale=crop_size, crop_ratio_range=(0.8, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='ResizeSegMap', size=(100, 100)),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    label_check,
    dict(type='ResizeSegMap', size=crop_size, as_ori_shape=True),
    dict(type='PackSegInputs'),
]
# --tta: the image and its horizontal flip, logits averaged
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug',
         transforms=[[dict(type='Resize', scale=crop_size, keep_ratio=False)],
                     [dict(type='RandomFlip', prob=0., direction='horizontal'),
                      dict(type='RandomFlip', prob=1., direction='horizontal')],
                     [dict(type='LoadAnnotations')], [label_check],
                     [dict(type='ResizeSegMap', size=crop_size, as_ori_shape=True)],
                     [dict(type='PackSegInputs')]]),
]
# Leopart and SemanticMIM train on 'trainaug' (VOC train + SBD, 10582 images): with the usual
# SegmentationClassAug folder, --cfg-options train_dataloader.dataset.ann_file=
# ImageSets/Segmentation/trainaug.txt train_dataloader.dataset.data_prefix.seg_map_path=
# SegmentationClassAug
train_dataloader = dict(
    batch_size=60,
    num_workers=8,
    sampler=dict(type='ResumableSampler', shuffle=True),  # exact mid-epoch resume
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=5, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.08, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='StepLR', step_size=10, gamma=0.1, by_epoch=True)]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=25, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=True, interval=5, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
log_processor = dict(by_epoch=True)
# lr 0.01 per 60 images: --auto-scale-lr rescales it for another total batch
auto_scale_lr = dict(enable=False, base_batch_size=480)
