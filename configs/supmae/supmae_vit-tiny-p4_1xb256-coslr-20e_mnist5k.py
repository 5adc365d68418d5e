# SupMAE on the embedded MNIST-5k at demo scale: the MAE demo config plus SupMAE's changes
# (1-block decoder, half the warm-up, the supervised branch on the visible tokens). Unlike the
# MAE demo it uses the labels of all 4000 train images (read from the class folders).
_base_ = ['../mae/mae_vit-tiny-p4_1xb256-coslr-20e_mnist5k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='SupMAE',
    neck=dict(decoder_depth=1),
    cls_head=dict(
        type='VisibleTokenClsHead',
        num_classes=10,
        in_channels=192,
        pool='avg',
        head='mlp',
        hidden_channels=768,  # 4x the width, as SupMAE's 3072 for ViT-B's 768
        temperature=10.0),
    cls_loss_ratio=0.01)

train_dataloader = dict(dataset=dict(with_label=True))

max_epochs = 20
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
