# The linear probe of ./vit-base-p16_8xb2048-linear-coslr-90e_in1k.py, from the SemanticMIM
# bottleneck checkpoint of ../maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py: same
# stock encoder, only the checkpoint differs (the bottleneck-only keys are left out when it
# loads).
_base_ = ['./vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']

model = dict(backbone=dict(init_cfg=dict(
    checkpoint='work_dirs/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
