"""Running a BEiT / MaskFeat-style encoder (one output row per patch) on given masks.

The stock encoders (``BEiTPretrainViT``, ``MaskFeatViT``) put a mask token at every masked
patch and run the whole sequence; the bottleneck ones (``BottleneckBEiTViT``,
``BottleneckMaskFeatViT``) also take separate masks and expose their main stream through
``forward_with_main``. :func:`encode_masked` hides that difference from the algorithms.
"""
from typing import NamedTuple, Optional

from torch import Tensor, nn


class MaskedEncoding(NamedTuple):
    """What an algorithm needs from one masked forward."""
    latent: Tensor  # (B, 1 + L, C): the rows the algorithm's neck/head read
    outputs: tuple  # the backbone's own output (a tuple for BEiT, of latent for MaskFeat)
    visible: Tensor  # (B, T + N, C): T cls tokens then the main stream's patch rows
    visible_mask: Optional[Tensor]  # (B, N) True = a mask token, the branch skips it
    num_cls_tokens: int  # T


def encode_masked(backbone: nn.Module, x: Tensor, mask: Tensor,
                  input_mask: Optional[Tensor] = None) -> MaskedEncoding:
    """Run ``backbone`` on images ``x`` ``(B, 3, H, W)`` with the predicted patches ``mask``
    ``(B, L)`` bool and, for separate masks, the patches ``input_mask`` hides from it."""
    if hasattr(backbone, 'forward_with_main'):  # a bottleneck backbone: two streams
        latent, main = backbone.forward_with_main(x, mask, input_mask)
        return MaskedEncoding(latent, (latent, ), main, None, backbone.num_cls_tokens)
    if input_mask is not None:
        raise ValueError(
            f'the data samples carry input_mask (separate masks), but {type(backbone).__name__} '
            'hides exactly the predicted patches. Fix: drop input_mask_generator, or use the '
            'bottleneck backbone (BottleneckBEiTViT / BottleneckMaskFeatViT).')
    out = backbone(x, mask)
    outputs = out if isinstance(out, tuple) else (out, )
    return MaskedEncoding(outputs[-1], outputs, outputs[-1], mask, 1)
