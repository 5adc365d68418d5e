# SemanticMIM on MaskFeat: the MaskFeat baseline recipe (./maskfeat_vit-base-p16_...) with the
# semantic-compression bottleneck and 8 cls tokens (SemanticMIM's MaskFeat setting): visible
# patches + 8 cls tokens run through the ViT; the mask tokens run through a twin 12-layer stack
# attending only to [cls tokens, mask tokens]; HOG is predicted from that stack. Downstream the
# stock VisionTransformer takes cls_token and the encoder; extra_cls_tokens, their position rows
# extra_cls_pos_embed and bottleneck_layers.* stay behind. Masks: 80% at random, as SemanticMIM's
# configs/maskfeat/maskfeat_bottleneck_pretrain.py (its baseline masks 40%).
_base_ = ['./maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py']

data_preprocessor = dict(mask_generator=dict(mask_ratio=0.8))

model = dict(
    type='BottleneckMaskFeat',
    backbone=dict(type='BottleneckMaskFeatViT', num_cls_tokens=8))
