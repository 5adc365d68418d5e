# Linear probe of an MAE ViT-H/14 on ImageNet-1k, batch 16384 (8 GPUs x 2048): frozen stock
# VisionTransformer, cls token after the final norm, BatchNorm without affine, linear classifier.
# mmpretrain has no ViT-H probe: its ViT-L one (the MAE recipe: 90 epochs, 10 warm-up, LARS lr
# 0.1 x 16384 / 256, wd 0) with the ViT-H/14 encoder.
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['./vit-large-p16_8xb2048-linear-coslr-90e_in1k.py']

model = dict(
    backbone=dict(arch='huge', patch_size=14, frozen_stages=32),
    neck=dict(input_features=1280),
    head=dict(in_channels=1280))
