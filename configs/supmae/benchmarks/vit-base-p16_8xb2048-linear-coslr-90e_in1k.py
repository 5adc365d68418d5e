# Linear probe of a SupMAE ViT-B/16 on ImageNet-1k: the MAE protocol of ../../mae/benchmarks
# unchanged (mmpretrain's: frozen stock VisionTransformer, cls token, BatchNorm without affine +
# linear head, LARS base lr 0.1, wd 0, 90 epochs). SupMAE probes the cls token although its
# branch pretrains on the pooled tokens; it ran batch 8192 at the same base lr.
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['../../mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
