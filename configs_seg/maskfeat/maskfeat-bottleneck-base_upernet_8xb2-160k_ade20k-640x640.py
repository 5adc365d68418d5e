# UperNet on ADE20K from the SemanticMIM MaskFeat ViT-B/16
# (../../configs/maskfeat/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py), pretrained
# with 8 cls tokens: the recipe of ./maskfeat-base_...; the encoder keeps the 8 cls tokens the
# patch tokens learned to attend to (MultiClsTokenViT: the stock VisionTransformer plus
# extra_cls_tokens and their position rows extra_cls_pos_embed). bottleneck_layers.* stay behind.
_base_ = ['./maskfeat-base_upernet_8xb2-160k_ade20k-640x640.py']

model = dict(backbone=dict(
    type='mmpretrain.MultiClsTokenViT',
    num_cls_tokens=8,
    init_cfg=dict(checkpoint='work_dirs/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k/'
                  'epoch_300.pth')))
