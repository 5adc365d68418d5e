# Fine-tune a MAE-pytorch ViT-B/16 (pengzhiliang/MAE-pytorch's README "Finetune" command with its
# run_class_finetuning.py defaults) on ImageNet-1k, batch 1024 (8 GPUs x 128). The checkpoint is
# one of configs/mae/mae-pytorch_vit-base-p16_8xb128-coslr-1600e_in1k.py, or one of its own
# converted by tools/model_converters/mae_pytorch_to_mmpretrain.py (layout beit).
# Its model: no cls token, BEiT blocks (q/v biases), the fixed 1-D table (not trained), mean of
# the patch rows + LayerNorm (its fc_norm = ln2), a linear head. Its recipe differs from
# vit-base-p16_8xb128-coslr-100e_in1k.py (the official MAE's) in lr 1e-3 x 1024 / 256 and layer
# decay 0.75; the rest is the same BEiT-derived recipe (100 epochs, 5 warm-up, cosine to 1e-6,
# AdamW betas (0.9, 0.999), wd 0.05 except on 1-D tensors, drop path 0.1, RandAugment m9 mstd 0.5,
# random erasing 0.25, mixup 0.8, cutmix 1.0, label smoothing 0.1, head init std 2e-5).
# Give the pretrained checkpoint as model.backbone.init_cfg.checkpoint.
_base_ = ['./vit-base-p16_8xb128-coslr-100e_in1k.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MAEPytorchViT',  # a BEiTViT whose position table is the fixed 1-D one
        arch='b',
        img_size=224,
        patch_size=16,
        norm_cfg=dict(type='LN', eps=1e-6),
        layer_scale_init_value=0.,
        drop_path_rate=0.1,
        final_norm=False,
        out_type='avg_featmap',
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))

optim_wrapper = dict(
    optimizer=dict(lr=1e-3 * 1024 / 256),
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.75,
        flat_decay_mult=0.0,  # norms, biases, q/v biases, layer scales: no weight decay
        custom_keys={'.pos_embed': dict(decay_mult=0.0)}))
