# UperNet on ADE20K from the SemanticMIM BEiT ViT-B/16
# (../../configs/beit/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py): the recipe of
# ./beit-base_..., only the checkpoint differs (bottleneck_layers.* stay behind).
_base_ = ['./beit-base_upernet_8xb2-160k_ade20k-640x640.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
