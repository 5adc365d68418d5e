"""SemMAE stage 1, semantic part learning: one part map per image from a frozen ViT.

The learned part learner of the paper's Figure 1 (``SemMAEPartLearner``: part tokens, attention
maps, AdaIN decoder, ``L_d`` and ``L_r``) and the baseline, a dataset-level k-means of the frozen
features (``part_learner.learn_parts``).
"""
from .adain_decoder import AdaINDecoder, adain
from .features import build_frozen_vit, patch_features
from .kmeans import assign, kmeans_plus_plus, minibatch_update, order_by_count
from .part_attention import (PartAttention, PartTokenEmbed, blur_maps, normalise_maps,
                             part_attention_logits)
from .part_learner import learn_parts, list_images
from .part_losses import diversity_loss, reconstruction_loss
from .semmae_part_learner import SemMAEPartLearner

__all__ = ['AdaINDecoder', 'PartAttention', 'PartTokenEmbed', 'SemMAEPartLearner', 'adain',
           'assign', 'blur_maps', 'build_frozen_vit', 'diversity_loss', 'kmeans_plus_plus',
           'learn_parts', 'list_images', 'minibatch_update', 'normalise_maps', 'order_by_count',
           'part_attention_logits', 'patch_features', 'reconstruction_loss']
