"""Downstream backbones; importing registers them into mmpretrain's MODELS."""
from .multi_cls_vit import MultiClsTokenViT
from .resizable_beit import ResizableBEiTViT

__all__ = ['MultiClsTokenViT', 'ResizableBEiTViT']
