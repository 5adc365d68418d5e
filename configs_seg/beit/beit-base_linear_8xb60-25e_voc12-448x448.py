# PascalVOC linear probing (Leopart protocol, ../mae/mae-base_linear_...) of a BEiT ViT-B/16 on
# mmpretrain's BEiTViT, frozen (as ResizableBEiTViT, whose relative position tables also resize
# with SciPy >= 1.14), with SemanticMIM's position handling: the learned absolute position
# embedding of pretraining (resized to the 28x28 patch grid of 448x448 inputs), no relative bias.
_base_ = ['../mae/mae-base_linear_8xb60-25e_voc12-448x448.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ResizableBEiTViT',
        arch='base',
        img_size=448,
        patch_size=16,
        out_type='featmap',
        out_indices=[7],
        final_norm=False,
        frozen_stages=12,
        layer_scale_init_value=0.1,
        use_abs_pos_emb=True,  # SemanticMIM's BEiT: absolute positions, no relative bias
        use_rel_pos_bias=False,
        use_shared_rel_pos_bias=False,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.',
            checkpoint='work_dirs/beit_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
