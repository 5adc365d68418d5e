# k-NN probe of a SupMAE ViT-B/16 on ImageNet-1k, DINO's protocol: frozen stock VisionTransformer,
# cls token after the final norm, L2-normalised; each val image takes its 20 most cosine-similar
# train images, which vote with weight exp(cos / 0.07). Backbone and data are the linear probe's
# (train: class folders, read through the val pipeline, resize 256 + centre crop 224).
#   python tools/knn_probe.py THIS_CONFIG CHECKPOINT [--feature mean] [--k 20] [--temperature 0.07]
# One process: the 1.28M x 768 train features stay on the device (3.9 GB, float32).
_base_ = ['./vit-base-p16_8xb2048-linear-coslr-90e_in1k.py']

knn_cfg = dict(k=20, temperature=0.07, feature='cls', layer=-1)
train_dataloader = dict(batch_size=256, num_workers=8)
val_dataloader = dict(batch_size=256, num_workers=8)
