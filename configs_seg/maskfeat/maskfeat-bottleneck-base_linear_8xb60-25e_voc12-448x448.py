# PascalVOC linear probing (Leopart protocol, ./maskfeat-base_linear_...) of the SemanticMIM
# MaskFeat ViT-B/16, pretrained with 8 cls tokens: the frozen encoder keeps all 8
# (MultiClsTokenViT, SemanticMIM's --num_cls_tokens), the probe reads the patch tokens only.
# --cfg-options model.backbone.num_cls_tokens=1 probes without the extra cls tokens.
_base_ = ['./maskfeat-base_linear_8xb60-25e_voc12-448x448.py']

model = dict(backbone=dict(
    type='mmpretrain.MultiClsTokenViT',
    num_cls_tokens=8,
    init_cfg=dict(checkpoint='work_dirs/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k/'
                  'epoch_300.pth')))
