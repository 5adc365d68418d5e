# Fine-tune a SemMAE ViT-B/8 pretrained at 112² (semmae_vit-base-p8_..._in1k-112px) on
# ImageNet-1k at 224² with 8² patches (28x28 = 784 tokens), as the SemMAE authors did (fine-tune
# and evaluation at 224², ucasligang/SemMAE issue #4). The stock VisionTransformer resizes the
# 14x14 position embedding of the checkpoint to 28x28 (bicubic) when it loads it.
# MAE's ViT-B recipe otherwise; 784 tokens need ~4x the memory, so 8x64 images per step with the
# lr scaled linearly (blr 5e-4 -> 1e-3 at 512).
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['./vit-base-p16_8xb128-coslr-100e_in1k.py']

model = dict(backbone=dict(patch_size=8))
train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 512 / 256))
auto_scale_lr = dict(base_batch_size=512)
