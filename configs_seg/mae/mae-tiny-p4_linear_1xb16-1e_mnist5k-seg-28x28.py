# The CPU demo's linear probe (python tools/run_seg_demo.py): the PascalVOC linear-probing recipe
# of ./mae-base_linear_... at toy scale on the demo's 28x28 MNIST-5k digit images (ADE20K
# layout, 10 digit classes, see ./mae-tiny-p4_upernet_...): the small MAE ViT of the main job
# frozen, its last block's patch tokens after the final LayerNorm through one 1x1 convolution, the
# logits upsampled to the label map. One epoch of the 4000 train images, batch 16, AdamW lr 1e-2,
# cosine (250 steps: SGD at the VOC recipe's lr would not get far).
_base_ = ['./mae-base_linear_8xb60-25e_voc12-448x448.py']

crop_size = (28, 28)
num_classes = 10
data_root = 'data/mnist5k_seg'
data_preprocessor = dict(mean=[33.3] * 3, std=[78.6] * 3, size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=192, num_layers=6, num_heads=3,
                  feedforward_channels=768),
        img_size=28,
        patch_size=4,
        out_indices=[5],
        final_norm=True,
        frozen_stages=6,
        init_cfg=dict(checkpoint='work_dirs/demo/mae_pretrain/epoch_15.pth')),
    decode_head=dict(in_channels=192, channels=192, num_classes=num_classes))

optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=250)]
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=1))

label_check = dict(type='CheckSegLabels', num_classes=num_classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    label_check,
    dict(type='PackSegInputs'),
]
test_pipeline = train_pipeline
tta_pipeline = [
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
auto_scale_lr = dict(base_batch_size=16)
randomness = dict(seed=0)
