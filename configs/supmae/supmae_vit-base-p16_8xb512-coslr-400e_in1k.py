# SupMAE ViT-B/16 pretraining on labelled ImageNet-1k, the recipe of the authors' training log
# (batch 4096; their PRETRAIN.md command gives 2048, see README.md "Batch size and lr"):
# mmpretrain's MAE 400-epoch config (batch 8x512 = 4096, AdamW lr 1.5e-4 x 4096/256, betas
# (0.9, 0.95), wd 0.05, norm-pix loss, mask 0.75, RandomResizedCrop (0.2, 1) + flip) with what
# SupMAE changes: a 1-block decoder, 20 warm-up epochs, and the supervised branch (mean of the
# visible tokens, BN-MLP head, CE on logits / 10, weight 0.01) trained on the image labels.
# As in configs/mae: mixed precision comes from the tools' `--amp` flag (mmengine's
# AmpOptimWrapper refuses to start without a GPU); SupMAE trained with AMP.
_base_ = [
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py',
    '../_base_/mim_runtime.py',
]
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

model = dict(
    type='SupMAE',
    # MAEViT's parameters; it also takes a given mask (data_sample.mask) when one is drawn
    backbone=dict(type='SemMAEViT'),
    neck=dict(decoder_depth=1),
    cls_head=dict(
        type='VisibleTokenClsHead',
        num_classes=1000,
        in_channels=768,
        pool='avg',
        head='mlp',
        hidden_channels=3072,
        temperature=10.0),
    cls_loss_ratio=0.01)

# SupMAE's weight decay (timm's add_weight_decay): every bias and every 1-D tensor (LayerNorm and
# the branch's BatchNorm weights) is exempt, everything else decays, cls_token and mask_token
# included. MAE's custom_keys (which exempt the tokens and decay the BatchNorm weight) are dropped;
# the frozen position embeddings are left out of the optimizer anyway.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=_base_.optim_wrapper.optimizer,
    paramwise_cfg=dict(bias_decay_mult=0.0, flat_decay_mult=0.0))

max_epochs = 400
warmup_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]

# The branch needs labels: the train/ class folders give them (sorted folder names = the usual
# ImageNet class indices; add ann_file='meta/train.txt' to skip scanning the folders).
train_dataloader = dict(
    sampler=dict(type='ResumableSampler'),  # exact mid-epoch resume
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root='data/imagenet/',
        data_prefix='train',
        with_label=True,
        pipeline=_base_.train_pipeline),
    # restated because mmengine 0.10 passes the `_scope_` key it adds to an inherited collate_fn
    # on to the function as an argument
    collate_fn=dict(_delete_=True, type='default_collate'))

# the resilient runtime (../_base_/mim_runtime.py): exact resume, safe checkpoints
train_cfg = dict(type='ResumableEpochBasedTrainLoop')
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
