# NEW COMBINATION (no paper reports it): MAE ViT-B/16 (./mae_vit-base-p16_8xb512-coslr-800e_in1k,
# the paper's 800-epoch recipe) with SemanticMIM's bottleneck in the decoder: the decoder's mask
# tokens attend only to [encoder cls token, mask tokens], never to the visible latents, so the
# cls token must carry what the pixels of the 75% masked patches need. Encoder names stay
# MAEViT's (the stock VisionTransformer downstream, ./benchmarks); num_cls_tokens > 1 adds
# extra_cls_tokens, which stay behind downstream.
_base_ = ['./mae_vit-base-p16_8xb512-coslr-800e_in1k.py']

model = dict(
    type='BottleneckMAE',
    backbone=dict(type='BottleneckMAEViT', num_cls_tokens=1),
    neck=dict(type='BottleneckMAEDecoder'))
