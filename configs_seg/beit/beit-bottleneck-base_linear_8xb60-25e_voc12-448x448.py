# PascalVOC linear probing (Leopart protocol, ./beit-base_linear_...) of the SemanticMIM BEiT
# ViT-B/16; only the checkpoint differs.
_base_ = ['./beit-base_linear_8xb60-25e_voc12-448x448.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
