# PascalVOC linear probing (Leopart protocol, ./mae-base_linear_...) of the MAE +
# SemanticMIM-bottleneck ViT-B/16 (a combination no paper reports); only the checkpoint differs.
_base_ = ['./mae-base_linear_8xb60-25e_voc12-448x448.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/mae-bottleneck_vit-base-p16_8xb512-coslr-800e_in1k/epoch_800.pth')))
