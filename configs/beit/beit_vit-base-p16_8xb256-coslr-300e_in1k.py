# BEiT v1 ViT-B/16 pretraining, 300 epochs on ImageNet-1k, batch 2048 (8 GPUs x 256), the
# baseline recipe of SemanticMIM: mmpretrain's BEiT (DALL-E tokens of a 112² second view as
# targets, CE on the masked patches, layer scale 0.1, AdamW lr 1.5e-3 at 2048, wd 0.05,
# clip 3.0, 10 warm-up epochs then cosine) with SemanticMIM's baseline masks and positions (its
# configs/beit/beit_baseline_pretrain.py): 40% of the 14x14 patches at random (a SimMIM-style
# generator with 16-px mask patches, i.e. per patch), learned absolute position embeddings and no
# relative position bias. Changed from mmpretrain's config:
#  - masks are drawn by MaskingDataPreprocessor, so any mask generator is one line to swap
#    (BlockMaskGenerator for BEiT's own block-wise 40%, SemanticPartMaskGenerator for SemMAE's);
#  - mixed precision from the tools' `--amp` flag (AmpOptimWrapper refuses to start on CPU);
#  - the tokenizer loads from a local file (nothing downloads at run time): put OpenMMLab's
#    dalle_encoder.pth (see README.md) at data/pretrained/dalle_encoder.pth;
#  - images are read from the train/ folder tree without labels.
_base_ = [
    'mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
    '../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

mask_ratio = 0.4
grid = 14  # 224 / 16
data_preprocessor = dict(
    _delete_=True,
    type='MaskingDataPreprocessor',
    preprocessor={{_base_.data_preprocessor}},
    mask_generator=dict(type='RandomMaskGenerator', mask_ratio=mask_ratio, grid=grid))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomResizedCropAndInterpolationWithTwoPic', size=224, second_size=112,
         interpolation='bicubic', second_interpolation='lanczos', scale=(0.08, 1.0)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    sampler=dict(type='ResumableSampler'),  # exact mid-epoch resume
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet/',
        data_prefix='train',
        with_label=False,
        pipeline=train_pipeline),
    # restated because mmengine 0.10 passes the `_scope_` key it adds to an inherited collate_fn
    # on to the function as an argument
    collate_fn=dict(_delete_=True, type='default_collate'))

model = dict(
    # BEiT reading the preprocessor's masks, its loss on the predicted rows only; the encoder is
    # BEiTPretrainViT (same parameters) with fused attention
    type='MaskedBEiT',
    # SemanticMIM's BEiT position encoding; BEiT's own: use_abs_pos_emb=False,
    # use_shared_rel_pos_bias=True
    backbone=dict(type='MaskedBEiTViT', use_abs_pos_emb=True, use_rel_pos_bias=False,
                  use_shared_rel_pos_bias=False),
    # mmpretrain's DALL-E encoder (same weights) asked for the ids at the predicted patches only
    target_generator=dict(
        type='DALLETokenizer',
        init_cfg=dict(type='Pretrained', checkpoint='data/pretrained/dalle_encoder.pth')))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=_base_.optim_wrapper.optimizer,
    clip_grad=_base_.optim_wrapper.clip_grad,
    paramwise_cfg=_base_.optim_wrapper.paramwise_cfg)

# the resilient runtime (../_base_/mim_runtime.py): exact resume, safe checkpoints
train_cfg = dict(type='ResumableEpochBasedTrainLoop')
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
