# MAE ViT-L/16 pretraining, 1600 epochs on ImageNet-1k, batch 4096 (8 GPUs x 512): the 800-epoch
# config with the schedule stretched to 1600 epochs (40 warm-up epochs, then cosine).
_base_ = ['./mae_vit-large-p16_8xb512-coslr-800e_in1k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

max_epochs = 1600
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=40,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 40, by_epoch=True, begin=40,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
