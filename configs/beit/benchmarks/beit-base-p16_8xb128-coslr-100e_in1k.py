# Fine-tune a BEiT ViT-B/16 (../beit_vit-base-p16_... or ../beit-bottleneck_vit-base-p16_...) on
# ImageNet-1k, batch 1024 (8 GPUs x 128), stock BEiTViT: mmpretrain's BEiT recipe, 100 epochs
# (20 warm-up), AdamW lr 4e-3, layer decay 0.65, wd 0.05, drop path 0.1, RandAug (m9, mstd 0.5),
# random erasing 0.25, mixup 0.8, cutmix 1.0, label smoothing 0.1, average pooling. Position
# encoding as SemanticMIM pretrains its BEiT (and as its fine-tuning keeps it): learned absolute
# embeddings, no relative position bias.
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = [
    'mmpretrain::beit/benchmarks/beit-base-p16_8xb128-coslr-100e_in1k.py',
    '../../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(backbone=dict(
    use_abs_pos_emb=True, use_rel_pos_bias=False, use_shared_rel_pos_bias=False,
    init_cfg=dict(
        checkpoint='work_dirs/beit_vit-base-p16_8xb256-coslr-300e_in1k/epoch_300.pth')))
# Labels from the train/ class folders, so any class-folder data set works; val is unchanged.
train_dataloader = dict(
    sampler=dict(type='ResumableSampler'),  # exact mid-epoch resume
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet/',
        data_prefix='train',
        pipeline=_base_.train_pipeline))

# the resilient runtime (../../_base_/mim_runtime.py): exact resume, safe checkpoints
train_cfg = dict(_delete_=True, type='ResumableEpochBasedTrainLoop',
                 max_epochs=_base_.train_cfg.max_epochs,
                 val_interval=_base_.train_cfg.val_interval)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
