# The fine-tune of ./beit-base-p16_8xb128-coslr-100e_in1k.py, from the SemanticMIM bottleneck
# checkpoint of ../beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py: same stock encoder,
# only the checkpoint differs (the bottleneck-only keys are left out when it loads).
_base_ = ['./beit-base-p16_8xb128-coslr-100e_in1k.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
