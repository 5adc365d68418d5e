# MAE-pytorch's recipe (mae-pytorch_vit-base-p16_8xb128-coslr-1600e_in1k.py) at the size of the
# demo: the small ViT (6 layers, 192-d, 3 heads, 4x4 patches of 28x28 images, L=49,
# int(0.75 * 49) = 36 masked), a 2-block 128-d decoder, on the embedded MNIST-5k for 15 epochs.
# Same model classes, target, optimiser and schedule shape as the ViT-B recipe; what changes is
# only what the image size and data set need (sizes, crop, the data's mean/std, lr for batch 64).
_base_ = ['./mae-pytorch_vit-base-p16_8xb128-coslr-1600e_in1k.py']

mean, std = [33.3] * 3, [78.6] * 3  # MNIST-5k's, as configs/_base_/datasets/mnist5k_mae.py
data_preprocessor = dict(mean=mean, std=std)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=6, num_heads=3,
                  feedforward_channels=768),
        img_size=28,
        patch_size=4),
    neck=dict(num_patches=49, patch_size=4, embed_dim=192, decoder_embed_dim=128,
              decoder_depth=2, decoder_num_heads=4),
    head=dict(patch_size=4, mean=[m / 255 for m in mean], std=[s / 255 for s in std]))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.5, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(data_root='data/mnist5k/', pipeline=train_pipeline))

optim_wrapper = dict(optimizer=dict(lr=1.5e-3))
max_epochs = 15
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-5,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(type='LoggerHook', interval=20),
                     checkpoint=dict(interval=5, max_keep_ckpts=1))
resume = False
auto_scale_lr = dict(base_batch_size=64)
