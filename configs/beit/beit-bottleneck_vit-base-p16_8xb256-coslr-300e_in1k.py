# SemanticMIM on BEiT: the BEiT baseline recipe (./beit_vit-base-p16_...) with the
# semantic-compression bottleneck. Visible patches + 1 cls token run through the ViT; the mask
# tokens of the masked patches run through a twin stack of 12 layers attending only to
# [cls token, mask tokens], and the DALL-E tokens are predicted from that stack. Only the ViT
# (stock BEiTViT names) goes downstream; bottleneck_layers.* stays behind. Masks: 60% at random,
# as SemanticMIM's configs/beit/beit_bottleneck_pretrain.py (its baseline masks 40%).
_base_ = ['./beit_vit-base-p16_8xb256-coslr-300e_in1k.py']

data_preprocessor = dict(mask_generator=dict(mask_ratio=0.6))

model = dict(
    type='BottleneckBEiT',
    backbone=dict(type='BottleneckBEiTViT', num_cls_tokens=1))
# The official BEiT recipe exempts every cls token ('.cls_token', one (1, N, C) parameter there)
# and position row from weight decay; with num_cls_tokens > 1 ours are split into these names.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    '.extra_cls_tokens': dict(decay_mult=0.0),
    '.extra_cls_pos_embed': dict(decay_mult=0.0)}))
