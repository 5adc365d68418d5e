# k-NN probe of the small demo ViT (DINO's protocol: frozen encoder, L2-normalised feature,
# the 20 most cosine-similar of the 500 labelled train images vote with weight exp(cos / 0.07)),
# on the linear probe's data and backbone. The main job runs it on MAE, random init and (with
# pixels_1xb64-linear-coslr-15e_mnist5k-500.py) raw pixels.
#   python tools/knn_probe.py THIS_CONFIG CHECKPOINT
# The feature is the mean of the last layer's patch tokens (after the final norm): MAE's loss
# never reads the cls token, and on the demo's 15-epoch checkpoint the mean gives 59.2% against
# 57.3% for the cls token (intermediate layers: lower, see docs/demos.md "Measured").
_base_ = ['./vit-tiny-p4_1xb64-linear-coslr-15e_mnist5k-500.py']

knn_cfg = dict(k=20, temperature=0.07, feature='mean', layer=-1)
train_dataloader = dict(batch_size=250)
