"""Heads the pretraining models share; importing registers them into mmpretrain's MODELS."""
from .visible_cls_head import VisibleTokenClsHead, gt_labels

__all__ = ['VisibleTokenClsHead', 'gt_labels']
