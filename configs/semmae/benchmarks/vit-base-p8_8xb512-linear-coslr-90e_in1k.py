# Linear probe of a SemMAE ViT-B/8 pretrained at 112², at 224² with 8² patches (784 tokens; the
# stock VisionTransformer resizes the position embedding on load), MAE's protocol otherwise.
# The 4x longer sequence needs 8x512 images per step; the LARS lr is scaled linearly
# (blr 0.1 -> 1.6 at 4096).
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['./vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']

model = dict(backbone=dict(patch_size=8))
train_dataloader = dict(batch_size=512)
optim_wrapper = dict(optimizer=dict(lr=0.1 * 4096 / 256))
auto_scale_lr = dict(base_batch_size=4096)
