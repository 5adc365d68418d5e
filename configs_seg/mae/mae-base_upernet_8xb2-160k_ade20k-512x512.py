# UperNet on ADE20K from an MAE ViT-B/16 (../../configs/mae), mmseg's MAE recipe: features of
# blocks 4, 6, 8 and 12 rescaled x4, x2, x1, x0.5 (Feature2Pyramid neck) into UperNet (+ an FCN
# auxiliary head on block 8), 512x512 crops, 160k iterations of 8 GPUs x 2 images, AdamW lr 1e-4,
# wd 0.05, layer-wise lr decay 0.65, 1500 linear warm-up iterations then poly, sliding-window
# inference. The encoder is the stock mmpretrain VisionTransformer, so the pretraining checkpoint
# loads as it is (prefix 'backbone.'): MAE's absolute position embedding, resized from 14x14 to
# 32x32 when it loads, and no relative position bias (the MAE paper adds a zero-initialised one
# for ADE20K; the stock ViT has none). Without the final LayerNorm, as mmseg's MAE backbone.
# Change the checkpoint with --cfg-options model.backbone.init_cfg.checkpoint=PATH.
_base_ = [
    '../_base_/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    '../../configs/_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='base',
        img_size=512,
        patch_size=16,
        out_type='featmap',
        out_indices=[3, 5, 7, 11],
        final_norm=False,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='work_dirs/mae_vit-base-p16_8xb512-coslr-1600e_in1k/epoch_1600.pth')))

# mmpretrain's layer-decay constructor, fed with the backbone's layer depths (mmseg's own
# constructor only knows its BEiT / MAE classes); no weight decay on 1-D parameters, position
# embedding and cls tokens, as BEiT's and MAE's segmentation code.
optim_wrapper = dict(
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.65,
        flat_decay_mult=0.0,
        custom_keys={
            '.pos_embed': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.extra_cls_tokens': dict(decay_mult=0.0),
            '.extra_cls_pos_embed': dict(decay_mult=0.0),
            'relative_position_bias_table': dict(decay_mult=0.0),
        }))

# mmseg's pipelines, each label map checked right after it is loaded
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
