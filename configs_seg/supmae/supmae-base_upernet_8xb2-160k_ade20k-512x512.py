# UperNet on ADE20K from a SupMAE ViT-B/16 (../../configs/supmae, 400 epochs): the MAE recipe of
# ../mae (SupMAE fine-tunes as MAE does); the supervised branch stays behind with the decoder.
_base_ = ['../mae/mae-base_upernet_8xb2-160k_ade20k-512x512.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/supmae_vit-base-p16_8xb512-coslr-400e_in1k/epoch_400.pth')))
