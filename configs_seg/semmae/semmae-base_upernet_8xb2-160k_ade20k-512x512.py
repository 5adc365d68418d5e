# UperNet on ADE20K from a SemMAE ViT-B/16 (../../configs/semmae, 224x224 with 16x16 patches,
# 800 epochs): the MAE recipe of ../mae; SemMAE's encoder is MAE's, only the masks differed.
_base_ = ['../mae/mae-base_upernet_8xb2-160k_ade20k-512x512.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/semmae_vit-base-p16_8xb256-coslr-800e_in1k/epoch_800.pth')))
