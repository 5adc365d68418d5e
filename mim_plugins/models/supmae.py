"""SupMAE (Liang et al. 2022, arXiv 2205.14540): MAE plus a supervised branch on visible tokens.

One encoder pass over the visible patches feeds both MAE's pixel decoder and a classification
head (``VisibleTokenClsHead``), so classification sees only the ~25% of the image that stays
visible. ``SupMAE`` is :class:`~mim_plugins.models.masked_mae.MaskedMAE` with the branch
required: random masks unless the data samples carry some (``MaskingDataPreprocessor``, or a
parity check replaying the official draw). The encoder weights load into a stock
``VisionTransformer``; ``cls_head.*`` is simply ignored downstream. The same branch attaches to
any of our algorithms by config (:mod:`~mim_plugins.models.supervised_branch`).
"""
from typing import Union

from mmpretrain.registry import MODELS
from torch import nn

from .masked_mae import MaskedMAE


@MODELS.register_module()
class SupMAE(MaskedMAE):
    """MAE with SupMAE's supervised classification branch.

    Args:
        cls_head: the branch, e.g. ``dict(type='VisibleTokenClsHead', num_classes=1000,
            in_channels=768, pool='avg', head='mlp', temperature=10.0)``. It receives the encoder
            output ``(B, 1 + N_visible, C)``.
        cls_loss_ratio: weight of the branch's loss (0.01 in SupMAE).
        **kwargs: ``backbone`` (``SemMAEViT``: MAEViT's parameters), ``neck``, ``head``, ... as
            in mmpretrain's ``MAE``.

    ``loss`` returns ``loss_rec`` (MAE's masked-patch pixel loss), ``loss_cls``
    (``cls_loss_ratio * CE(logits / temperature, label)``) and the branch's batch top-k
    accuracy (``accuracy_top-k``, logged only: mmengine optimises the keys containing ``loss``).
    The train data set must carry labels (``gt_label`` in every data sample).
    """

    def __init__(self, cls_head: Union[dict, nn.Module], cls_loss_ratio: float = 0.01,
                 **kwargs) -> None:
        super().__init__(cls_head=cls_head, cls_loss_ratio=cls_loss_ratio, **kwargs)
