"""Layer-wise learning-rate decay for an mmseg segmentor around an mmpretrain ViT.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the *model* for
``get_layer_depth``, which mmseg's ``EncoderDecoder`` does not have; mmseg's own
``LearningRateDecayOptimizerConstructor`` recognises backbones by class name ('BEiT', 'MAE',
'ConvNeXt') and refuses mmpretrain's ``VisionTransformer``. This constructor is mmpretrain's,
fed with the backbone's ``get_layer_depth`` (``VisionTransformer``, ``BEiTViT``, ...): the stem
(patch embedding, cls token, position embedding) is depth 0, block ``i`` depth ``i + 1``, and
everything outside the backbone (neck, heads) gets the full lr.
"""
from functools import partial
from typing import List

from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from ..utils.errors import UserInputError


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """``paramwise_cfg`` as mmpretrain's constructor: ``layer_decay_rate`` (lr of depth ``d`` of
    ``D = num_layers + 2`` is ``lr * rate ** (D - 1 - d)``), ``custom_keys`` (``decay_mult``),
    ``norm_decay_mult``, ``bias_decay_mult``, ``flat_decay_mult``."""

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   get_layer_depth=None, **kwargs) -> None:
        if get_layer_depth is None and not hasattr(module, 'get_layer_depth'):
            get_layer_depth = self.backbone_depths(module)
        super().add_params(params, module, prefix, get_layer_depth, **kwargs)

    @staticmethod
    def backbone_depths(model: nn.Module) -> partial:
        """``model.backbone.get_layer_depth`` for the model's full parameter names."""
        backbone = getattr(model, 'backbone', None)
        if not hasattr(backbone, 'get_layer_depth'):
            raise UserInputError(
                f'Layer-wise lr decay needs a backbone with get_layer_depth (mmpretrain\'s '
                f'VisionTransformer, BEiTViT, ...); {type(backbone).__name__} has none. Fix: use '
                "such a backbone, or drop the optim_wrapper's constructor and paramwise_cfg.")
        return partial(backbone.get_layer_depth, prefix='backbone.')
