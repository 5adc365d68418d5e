# The MAE paper's ADE20K recipe as mmseg ships it: mmsegmentation 1.2.2's
# configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py, the same merged values
# (tests/test_seg_base_configs.py), inherited by path so that it loads with either mmseg
# distribution. UperNet on the MAE ViT-B/16 (drop path 0.1) at 512x512, 150 classes, sliding
# inference (stride 341); AdamW lr 1e-4, wd 0.05, layer decay 0.65 over 12 layers; 1500 linear
# warm-up iterations, then poly decay to 0 at 160k; fp16 with a dynamic loss scale; 8 GPUs x 2.
_base_ = [
    './models/upernet_mae.py', './datasets/ade20k.py', './default_runtime.py',
    './schedules/schedule_160k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained='./pretrain/mae_pretrain_vit_base_mmcls.pth',
    backbone=dict(
        type='MAE',
        img_size=(512, 512),
        patch_size=16,
        embed_dims=768,
        num_layers=12,
        num_heads=12,
        mlp_ratio=4,
        init_values=1.0,
        drop_path_rate=0.1,
        out_indices=[3, 5, 7, 11]),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], num_classes=150, channels=768),
    auxiliary_head=dict(in_channels=768, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.65),
    constructor='LayerDecayOptimizerConstructor')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
fp16 = dict(loss_scale='dynamic')
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
