# The BEiT paper's ADE20K recipe as mmseg ships it (SemanticMIM's too): mmsegmentation 1.2.2's
# configs/beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py, the same merged values
# (tests/test_seg_base_configs.py), inherited by path so that it loads with either mmseg
# distribution. UperNet on the BEiT ViT-B/16 at 640x640, sliding inference (stride 426); AdamW
# lr 3e-5, wd 0.05, layer decay 0.9 over 12 layers; 1500 linear warm-up iterations, then poly
# decay to 0 at 160k; 8 GPUs x 2.
_base_ = [
    './models/upernet_beit.py', './datasets/ade20k_640x640.py', './default_runtime.py',
    './schedules/schedule_160k.py',
]
crop_size = (640, 640)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained='pretrain/beit_base_patch16_224_pt22k_ft22k.pth',
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(426, 426)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimizerConstructor',
    paramwise_cfg=dict(num_layers=12, layer_decay_rate=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, begin=1500, end=160000, eta_min=0.0, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
