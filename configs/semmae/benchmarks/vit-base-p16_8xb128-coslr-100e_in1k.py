# Fine-tune a SemMAE ViT-B/16 (../semmae_vit-base-p16_...) on ImageNet-1k: SemMAE fine-tunes
# exactly as MAE does, so this is ../../mae/benchmarks' MAE ViT-B recipe unchanged (100 epochs,
# blr 5e-4, layer decay 0.65, wd 0.05, drop path 0.1, RandAugment m9 mstd 0.5, random erasing
# 0.25, mixup 0.8, cutmix 1.0, label smoothing 0.1, global pool, stock VisionTransformer).
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['../../mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)
