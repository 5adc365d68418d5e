# k-NN probe of the small demo ViT on GroceryStore photos (DINO's protocol: frozen encoder,
# L2-normalised feature, the 20 most cosine-similar of the 675 labelled train photos vote with
# weight exp(cos / 0.07)); queries: the 1,322 test photos. The feature is the mean of the last
# layer's patch tokens (after the final norm), as for MNIST-5k.
#   python tools/knn_probe.py THIS_CONFIG CHECKPOINT
_base_ = ['./vit-tiny-p16_1xb64-linear-coslr-10e_groceries-64px.py']

knn_cfg = dict(k=20, temperature=0.07, feature='mean', layer=-1)
train_dataloader = dict(batch_size=250)
