# SupMAE on the embedded MNIST-5k at demo scale: the MAE demo config plus SupMAE's changes
# (1-block decoder, the supervised branch on the visible tokens; same 15-epoch schedule). Unlike the
# MAE demo it uses the labels of all 4000 train images (read from the class folders).
_base_ = ['../mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='SupMAE',
    backbone=dict(type='SemMAEViT'),  # MAEViT that also takes a given mask
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

# SupMAE's weight decay, as in the ViT-B config: biases and 1-D tensors exempt, the rest
# (cls_token and mask_token included) decays
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, bias_decay_mult=0.0, flat_decay_mult=0.0))

train_dataloader = dict(dataset=dict(with_label=True))

