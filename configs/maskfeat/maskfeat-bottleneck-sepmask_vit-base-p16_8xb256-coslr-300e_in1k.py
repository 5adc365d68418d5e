# SemanticMIM's separate masks on the MaskFeat bottleneck (./maskfeat-bottleneck_...), as its
# SimMIMMaskGeneratorOurs(use_separate_mask=True) draws them: 80% of the patches hidden from the
# ViT, and the patches the twin stack predicts drawn independently at 60% (its
# separate_mask_ratio default); a predicted patch may be one the ViT sees: it still has to be
# rebuilt through the cls tokens.
_base_ = ['./maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py']

data_preprocessor = dict(
    mask_generator=dict(mask_ratio=0.6),
    input_mask_generator=dict(type='RandomMaskGenerator', mask_ratio=0.8, grid=14))
