# Linear probe of a BEiT ViT-B/16 on ImageNet-1k: the MAE protocol of ../../mae/benchmarks
# (frozen encoder, cls token after the final norm, BatchNorm without affine + linear head, LARS
# blr 0.1, wd 0, 90 epochs, 8 x 2048 images per step) on the stock BEiTViT of the fine-tune
# config. The cls token is what SemanticMIM's bottleneck trains to carry the image.
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['../../mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='BEiTViT',
        arch='base',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
        frozen_stages=12,
        use_abs_pos_emb=True,  # SemanticMIM's BEiT: absolute positions, no relative bias
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=False,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='work_dirs/beit_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
