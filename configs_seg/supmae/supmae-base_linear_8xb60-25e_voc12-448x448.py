# PascalVOC linear probing (Leopart protocol, ../mae/mae-base_linear_...) of a SupMAE ViT-B/16.
_base_ = ['../mae/mae-base_linear_8xb60-25e_voc12-448x448.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/supmae_vit-base-p16_8xb512-coslr-400e_in1k/epoch_400.pth')))
