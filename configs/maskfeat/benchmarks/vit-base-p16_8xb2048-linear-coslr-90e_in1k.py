# Linear probe of a MaskFeat ViT-B/16 (baseline or bottleneck) on ImageNet-1k: the MAE protocol
# of ../../mae/benchmarks unchanged (frozen stock VisionTransformer, cls token, BatchNorm without
# affine + linear head, LARS blr 0.1, wd 0, 90 epochs, 8 x 2048 images per step).
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['../../mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
