# Linear probe of a SemMAE ViT-B/16 on ImageNet-1k: ../../mae/benchmarks' MAE protocol unchanged
# (frozen stock VisionTransformer, cls token, BatchNorm without affine + linear head, LARS,
# blr 0.1, wd 0, 90 epochs, 8 x 2048 = 16384 images per step).
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['../../mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)
