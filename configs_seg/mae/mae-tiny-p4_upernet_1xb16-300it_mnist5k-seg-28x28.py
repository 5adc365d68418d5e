# The CPU segmentation demo (python tools/run_seg_demo.py): the UperNet recipe of
# ./mae-base_upernet_... at toy scale, from the small MAE ViT of the main job
# (../../configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py: 6 blocks, 192-d, 4x4 patches,
# pretrained on the 28x28 MNIST-5k train digits). Data: the MNIST-5k digits as 28x28
# segmentation images in ADE20K's layout (mim_plugins/datasets/seg_data.py): raw id 1 + d on the
# pixels of digit d, the black background and the faint rims 0, ADE20K's "unlabelled"
# (ignored), so every evaluated pixel is a digit and the task is to tell which: 10 classes,
# 4000 train images, the 1000 val digits for testing. 28x28 keeps the 7x7 token grid of
# pretraining (the small ViT's learned position embedding does not survive being stretched to a
# larger grid). Blocks 2, 3, 4 and 6 rescaled x4, x2, x1, x0.5 into a narrow UperNet;
# 300 iterations of 16 images, AdamW lr 1e-3, layer decay 0.75, 30 warm-up iterations then
# poly; images normalised as in pretraining.
_base_ = ['./mae-base_upernet_8xb2-160k_ade20k-512x512.py']

crop_size = (28, 28)
num_classes = 10
data_root = 'data/mnist5k_seg'
# (top level too: mmengine gives it to the model that --tta wraps)
data_preprocessor = dict(mean=[33.3] * 3, std=[78.6] * 3, size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=6, num_heads=3,
                  feedforward_channels=768),
        img_size=28,
        patch_size=4,
        out_indices=[1, 2, 3, 5],
        drop_path_rate=0.0,
        init_cfg=dict(checkpoint='work_dirs/demo/mae_pretrain/epoch_15.pth')),
    neck=dict(embed_dim=192),
    decode_head=dict(in_channels=[192] * 4, channels=64, num_classes=num_classes),
    auxiliary_head=dict(in_channels=192, channels=32, num_classes=num_classes),
    test_cfg=dict(_delete_=True, mode='whole'))

optim_wrapper = dict(optimizer=dict(lr=1e-3), paramwise_cfg=dict(layer_decay_rate=0.75))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=30, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))

# mmseg's BaseSegDataset reads the ADE20K layout with the demo's own 10 classes
label_check = dict(type='CheckSegLabels', num_classes=num_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    label_check,
    dict(type='PackSegInputs'),
]
test_pipeline = train_pipeline
tta_pipeline = [  # --tta: nothing to vary on centred digits but the evaluation itself
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[[dict(type='LoadAnnotations')], [label_check],
                                         [dict(type='PackSegInputs')]]),
]
dataset = dict(
    _delete_=True,
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=tuple(f'digit {d}' for d in range(10))),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    dataset=dict(data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline, **dataset))
val_dataloader = dict(
    batch_size=50,
    num_workers=1,
    dataset=dict(data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation'),
                 pipeline=test_pipeline, **dataset))
test_dataloader = val_dataloader
randomness = dict(seed=0)
