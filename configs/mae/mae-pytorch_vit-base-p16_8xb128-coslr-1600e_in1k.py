# pengzhiliang/MAE-pytorch's recipe (the unofficial MAE; README "Pretrain" command, ViT-B, commit
# 8b3ab30), not the official MAE's: its checkpoints convert exactly into this model
# (tools/model_converters/mae_pytorch_to_mmpretrain.py) and docs/mae_pytorch.md says how close
# it is to its code. What it does differently from mae_vit-base-p16_8xb512-coslr-1600e_in1k.py:
#  - encoder: no cls token, a fixed 1-D sine-cosine table, BEiT layers (q/v biases, no k bias,
#    no layer scale: init_values=0); decoder 384-d, 4 blocks, 6 heads, a bias-free
#    encoder_to_decoder, its mask tokens after the visible tokens; predicts masked patches only;
#  - target: per patch AND channel, (x - mean) / (unbiased std + 1e-6) of the [0, 1] pixels;
#  - int(0.75 * 196) = 147 masked patches per image (its RandomMaskingGenerator);
#  - data: torchvision's RandomResizedCrop(224) defaults (scale 0.08-1, bilinear), no flip;
#  - 8 GPUs x 128 = batch 1024, AdamW lr 1.5e-4 x 1024 / 256, betas (0.9, 0.95), wd 0.05 on
#    every matrix (none on 1-D tensors and the mask token), 40 warm-up epochs from 0, then
#    per-iteration cosine to 1e-5, 1600 epochs; a checkpoint every 20 epochs.
# Mixed precision comes from the tools' `--amp` flag (as MAE-pytorch's autocast).
_base_ = ['mmpretrain::_base_/default_runtime.py', '../_base_/mim_runtime.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# ImageNet mean/std; the head undoes them for the target, in [0, 1] units (the same numbers / 255)
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
model = dict(
    type='MAEPytorch',
    mask_ratio=0.75,
    backbone=dict(
        type='MAEPytorchViT',
        arch='b',
        img_size=224,
        patch_size=16,
        norm_cfg=dict(type='LN', eps=1e-6),
        layer_scale_init_value=0.,
        drop_path_rate=0.,
        init_cfg=[
            dict(type='Xavier', layer='Linear', distribution='uniform'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
        ]),
    neck=dict(
        type='MAEPytorchDecoder',
        num_patches=196,
        patch_size=16,
        embed_dim=768,
        decoder_embed_dim=384,
        decoder_depth=4,
        decoder_num_heads=6,
        mlp_ratio=4.,
        layer_scale_init_value=0.,
        init_cfg=[
            dict(type='Xavier', layer='Linear', distribution='uniform'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
        ]),
    head=dict(
        type='MAEPytorchHead',
        patch_size=16,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        norm_pix=True))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.08, 1.0),
         aspect_ratio_range=(3. / 4., 4. / 3.), backend='pillow', interpolation='bilinear'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128,
    num_workers=10,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='ResumableSampler', shuffle=True),  # exact mid-epoch resume
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root='data/imagenet/', data_prefix='train',
                 with_label=False, pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 1024 / 256, betas=(0.9, 0.95), eps=1e-8,
                   weight_decay=0.05),
    # MAE-pytorch: no decay on 1-D tensors (norms, biases, q/v biases) and on the mask token
    paramwise_cfg=dict(flat_decay_mult=0., custom_keys={'mask_token': dict(decay_mult=0.)}))

max_epochs = 1600
warmup_epochs = 40
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-5,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook', interval=20, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
resume = True
auto_scale_lr = dict(base_batch_size=1024)
