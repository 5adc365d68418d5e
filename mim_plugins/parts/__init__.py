"""SemMAE stage 1, semantic part learning: one part map per image from a frozen ViT's features
clustered by a dataset-level k-means (see ``part_learner``)."""
from .features import build_frozen_vit, patch_features
from .kmeans import assign, kmeans_plus_plus, minibatch_update, order_by_count
from .part_learner import learn_parts, list_images

__all__ = ['assign', 'build_frozen_vit', 'kmeans_plus_plus', 'learn_parts', 'list_images',
           'minibatch_update', 'order_by_count', 'patch_features']
