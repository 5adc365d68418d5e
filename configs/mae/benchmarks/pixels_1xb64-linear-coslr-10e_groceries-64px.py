# The raw-pixel baseline of the photo demo: the linear probe of
# vit-tiny-p16_1xb64-linear-coslr-10e_groceries-64px.py (BatchNorm without affine, linear head,
# LARS, same schedule and data) with the normalised pixels themselves, flattened (3 x 64 x 64),
# as the frozen feature. tools/knn_probe.py on this config (no checkpoint) is the raw-pixel k-NN.
_base_ = ['./vit-tiny-p16_1xb64-linear-coslr-10e_groceries-64px.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

pixels = 3 * 64 * 64
model = dict(
    backbone=dict(_delete_=True, type='RawPixels'),
    neck=dict(input_features=pixels),
    head=dict(in_channels=pixels))
knn_cfg = dict(k=20, temperature=0.07)
