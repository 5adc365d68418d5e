# Fine-tune a SupMAE ViT-B/16 on ImageNet-1k: the MAE ViT-B recipe of ../../mae/benchmarks (itself
# mmpretrain's: 100 epochs, layer decay 0.65, wd 0.05, drop path 0.1, RandAugment m9 mstd 0.5,
# random erasing 0.25, mixup 0.8, cutmix 1.0, label smoothing 0.1, global pool, stock
# VisionTransformer) with SupMAE's one change (official FINETUNE.md): base lr 1e-3 instead of
# 5e-4, i.e. lr 1e-3 x 1024 / 256 at batch 8x128.
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['../../mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
optim_wrapper = dict(optimizer=dict(lr=1e-3 * 1024 / 256))
