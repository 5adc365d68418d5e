# PascalVOC linear probing (Leopart protocol, ../mae/mae-base_linear_...) of a MaskFeat
# ViT-B/16: the same stock VisionTransformer, frozen, only the checkpoint differs.
_base_ = ['../mae/mae-base_linear_8xb60-25e_voc12-448x448.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
