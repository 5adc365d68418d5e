# UperNet on ADE20K from the MAE + SemanticMIM-bottleneck ViT-B/16
# (../../configs/mae/mae-bottleneck_vit-base-p16_8xb512-coslr-800e_in1k.py, a combination no
# paper reports): the recipe of ./mae-base_..., only the checkpoint differs (its encoder keys are
# MAE's; the bottleneck decoder stays behind).
_base_ = ['./mae-base_upernet_8xb2-160k_ade20k-512x512.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/mae-bottleneck_vit-base-p16_8xb512-coslr-800e_in1k/epoch_800.pth')))
