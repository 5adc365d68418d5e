"""BEiT with SemanticMIM's semantic-compression bottleneck (Yang et al. 2024).

``BottleneckBEiTViT`` is mmpretrain's ``BEiTPretrainViT`` with the two streams of
:class:`~mim_plugins.models.bottleneck.BottleneckMixin` (its shared relative position bias
subset to the tokens each stream runs on); ``BottleneckBEiT`` is BEiT v1's algorithm on it
(:class:`~mim_plugins.models.masked_beit.MaskedBEiT` with that encoder required).
"""
from typing import Optional, Tuple

from mmpretrain.models.selfsup.beit import BEiTPretrainViT
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from .bottleneck import BottleneckMixin
from .masked_beit import MaskedBEiT


@MODELS.register_module()
class BottleneckBEiTViT(BottleneckMixin, BEiTPretrainViT):
    """``BEiTPretrainViT`` with the bottleneck: ``encode(x, mask, input_mask)`` runs the two
    streams, ``forward(x)`` (no mask) the plain ViT.

    Args:
        num_cls_tokens: cls tokens that carry the image to the mask tokens (1 in SemanticMIM's
            BEiT recipe). Other arguments: ``BEiTPretrainViT``'s.
    """

    def init_weights(self) -> None:
        super().init_weights()
        if isinstance(self.init_cfg, dict) and self.init_cfg['type'] == 'Pretrained':
            return
        for layer_id, layer in enumerate(self.bottleneck_layers, 1):
            # BEiT's depth rescaling of the residual branches, for the twin stack too
            layer.attn.proj.weight.data.div_((2.0 * layer_id) ** 0.5)
            layer.ffn.layers[1].weight.data.div_((2.0 * layer_id) ** 0.5)

    def run_layer(self, layer: nn.Module, x: Tensor, bias: Optional[Tensor]) -> Tensor:
        """One BEiT layer, with the relative position bias of the tokens it runs on."""
        return layer(x, rel_pos_bias=bias)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor]:
        if mask is not None:
            raise ValueError('BottleneckBEiTViT encodes masked images with encode(x, mask, '
                             "input_mask); the stock BEiT cannot use it. Fix: "
                             "type='BottleneckBEiT'.")
        return super().forward(x, None)


@MODELS.register_module()
class BottleneckBEiT(MaskedBEiT):
    """SemanticMIM's BEiT: ``MaskedBEiT`` (v1, no neck) on a ``BottleneckBEiTViT``.

    Args: ``MaskedBEiT``'s (``backbone=dict(type='BottleneckBEiTViT', ...)``).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.backbone, BottleneckBEiTViT):
            raise ValueError(f'BottleneckBEiT needs backbone BottleneckBEiTViT, got '
                             f'{type(self.backbone).__name__}. Fix: backbone=dict(type='
                             "'BottleneckBEiTViT', ...), or type='MaskedBEiT'.")
