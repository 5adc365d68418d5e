# SemanticMIM's separate masks on the MaskFeat bottleneck (./maskfeat-bottleneck_...): the
# patches hidden from the ViT and the patches predicted by the twin stack are drawn
# independently, each 80% at random (a predicted patch may be one the ViT sees: it still has
# to be rebuilt through the cls tokens). The ratios are ours; change either generator's.
_base_ = ['./maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py']

data_preprocessor = dict(
    input_mask_generator=dict(type='RandomMaskGenerator', mask_ratio=0.8, grid=14))
