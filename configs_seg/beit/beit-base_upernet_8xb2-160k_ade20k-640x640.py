# UperNet on ADE20K from a BEiT ViT-B/16 (../../configs/beit), SemanticMIM's recipe, which is
# mmseg's BEiT one: features of blocks 4, 6, 8 and 12 rescaled x4, x2, x1, x0.5 (Feature2Pyramid)
# into UperNet (+ an FCN auxiliary head), 640x640 crops, 160k iterations of 8 GPUs x 2 images,
# AdamW lr 3e-5, wd 0.05, layer-wise lr decay 0.9, 1500 warm-up iterations then poly, sliding
# windows at test time. The encoder is mmpretrain's BEiTViT (as ResizableBEiTViT, whose relative
# position tables also resize to the 40x40 window with SciPy >= 1.14) with SemanticMIM's position
# handling: a learned absolute position embedding (resized from 14x14 to 40x40 when it loads), no
# relative position bias; layer scale. (BEiT's own relative bias: use_abs_pos_emb=False,
# use_rel_pos_bias=True, for a checkpoint pretrained with it.) Change the checkpoint with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
_base_ = [
    '../_base_/beit-base_upernet_8xb2-160k_ade20k-640x640.py',
    '../../configs/_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

# BEiTViT's position table is built for 640x640 inputs: test images (and the
# downscaled ones of --tta) smaller than that are padded up to it. (Set at the top level too:
# mmengine gives the top-level data_preprocessor to the model that --tta wraps.)
data_preprocessor = dict(test_cfg=dict(size=(640, 640)))
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ResizableBEiTViT',
        arch='base',
        img_size=640,
        patch_size=16,
        out_type='featmap',
        out_indices=[3, 5, 7, 11],
        final_norm=False,
        drop_path_rate=0.1,
        layer_scale_init_value=0.1,
        use_abs_pos_emb=True,  # SemanticMIM's BEiT: absolute positions, no relative bias
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=False,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='work_dirs/beit_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))

# As ../mae: mmpretrain's layer-decay constructor on the backbone's depths, no weight decay on
# 1-D parameters, position tables and cls tokens.
optim_wrapper = dict(
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.9,
        flat_decay_mult=0.0,
        custom_keys={
            '.pos_embed': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.extra_cls_tokens': dict(decay_mult=0.0),
            '.extra_cls_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
        }))

label_check = dict(type='CheckSegLabels', num_classes=150)
train_pipeline = _base_.train_pipeline[:2] + [label_check] + _base_.train_pipeline[2:]
test_pipeline = _base_.test_pipeline[:3] + [label_check] + _base_.test_pipeline[3:]
tta_pipeline = [
    _base_.tta_pipeline[0],
    dict(type='TestTimeAug',
         transforms=_base_.tta_pipeline[1]['transforms'][:3] + [[label_check]] +
         _base_.tta_pipeline[1]['transforms'][3:]),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# the resilient runtime (../../configs/_base_/mim_runtime.py); mmengine's iteration-based loop
# resumes mid-run itself (it reads and drops the batches already trained)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
