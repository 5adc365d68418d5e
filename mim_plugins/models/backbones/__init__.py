"""Downstream backbones; importing registers them into mmpretrain's MODELS (and lets BEiTViT
resize its relative position bias with current SciPy)."""
from . import rel_pos_bias  # noqa: F401
from .multi_cls_vit import MultiClsTokenViT

__all__ = ['MultiClsTokenViT']
