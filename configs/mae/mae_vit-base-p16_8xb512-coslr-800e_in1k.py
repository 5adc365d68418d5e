# MAE ViT-B/16 pretraining, 800 epochs on ImageNet-1k, batch 4096 (8 GPUs x 512).
# mmpretrain's config already is the paper's recipe: norm-pix loss, mask ratio 0.75, 512-d 8-block
# decoder, AdamW betas (0.9, 0.95), wd 0.05, lr 1.5e-4 x 4096 / 256, 40 warm-up epochs then cosine,
# RandomResizedCrop scale (0.2, 1) + flip. Changed here:
#  - mixed precision comes from the tools' `--amp` flag, not from the config: mmengine's
#    AmpOptimWrapper refuses to start without a GPU;
#  - training images are read from the train/ folder tree without labels (pretraining needs
#    none), so any image-folder data set works, not only one with exactly 1000 class folders.
# Option, when the CPUs feeding the GPUs are the limit: crop_decode/mae_vit-base-p16_8xb512-
# cropdecode-coslr-800e_in1k.py is this recipe with crop-aware JPEG decoding (load + crop in one
# pass, the same crop boxes; about 2x the images per core, see docs/data.md).
_base_ = [
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py',
    '../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=_base_.optim_wrapper.optimizer,
    paramwise_cfg=_base_.optim_wrapper.paramwise_cfg)
train_dataloader = dict(
    sampler=dict(type='ResumableSampler'),  # exact mid-epoch resume
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet/',
        data_prefix='train',
        with_label=False,
        pipeline=_base_.train_pipeline),
    # restated because mmengine 0.10 passes the `_scope_` key it adds to an inherited collate_fn
    # on to the function as an argument
    collate_fn=dict(_delete_=True, type='default_collate'))

# the resilient runtime (../_base_/mim_runtime.py): exact resume, safe checkpoints
train_cfg = dict(type='ResumableEpochBasedTrainLoop')
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
