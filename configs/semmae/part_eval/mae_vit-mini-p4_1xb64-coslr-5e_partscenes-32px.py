# The frozen ViT of the part-discovery evaluation (docs/semmae_stage1.md): a small MAE ViT
# (4 layers, 96-d, 3 heads; 4² patches on 32² images, an 8x8 token grid) pretrained on the
# generated part scenes. Sized for a shared 2-core CPU; tools/part_learning/eval_parts.py writes
# the data and runs it.
_base_ = ['../../mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py']

data_root = 'data/part_scenes/'
model = dict(
    backbone=dict(arch=dict(embed_dims=96, num_layers=4, num_heads=3, feedforward_channels=384),
                  img_size=32),
    neck=dict(num_patches=64, embed_dim=96, decoder_embed_dim=64, decoder_depth=1,
              decoder_num_heads=2))
# The scenes' textures are uniform colour mixes: mean ~127.5, std ~64 per channel.
data_preprocessor = dict(mean=[127.5] * 3, std=[64.0] * 3)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(data_root=data_root, pipeline=train_pipeline))
max_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(checkpoint=dict(interval=5))
