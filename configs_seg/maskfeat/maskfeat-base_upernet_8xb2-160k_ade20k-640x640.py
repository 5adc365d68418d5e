# UperNet on ADE20K from a MaskFeat ViT-B/16 (../../configs/maskfeat), SemanticMIM's recipe: the
# BEiT one of ../beit (640x640, AdamW lr 3e-5, layer decay 0.9, 160k iterations, 8 x 2 images)
# on the stock mmpretrain VisionTransformer, MaskFeat's encoder: its learned absolute position
# embedding (resized from 14x14 to 40x40 when it loads), no relative position bias.
_base_ = ['../beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='base',
        img_size=640,
        patch_size=16,
        out_type='featmap',
        out_indices=[3, 5, 7, 11],
        final_norm=False,
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='work_dirs/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
