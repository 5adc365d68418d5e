"""SupMAE (Liang et al. 2022, arXiv 2205.14540): MAE plus a supervised branch on visible tokens.

One encoder pass over the visible patches feeds both MAE's pixel decoder and a classification
head (``VisibleTokenClsHead``), so classification sees only the ~25% of the image that stays
visible. Everything else, the checkpoint layout included, is mmpretrain's ``MAE``: the encoder
weights load into a stock ``VisionTransformer``; ``cls_head.*`` is simply ignored downstream.
With ``SemMAEViT`` as the backbone the mask may also be given (``data_sample.mask``), e.g. by
``MaskingDataPreprocessor`` or by a parity check that replays the official draw.
"""
from typing import Dict, List, Union

import torch
from mmpretrain.models.selfsup import MAE
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from .semmae import SemMAE, SemMAEViT


@MODELS.register_module()
class SupMAE(MAE):
    """MAE with SupMAE's supervised classification branch.

    Args:
        cls_head: the branch, e.g. ``dict(type='VisibleTokenClsHead', num_classes=1000,
            in_channels=768, pool='avg', head='mlp', temperature=10.0)``. It receives the encoder
            output ``(B, 1 + N_visible, C)``.
        cls_loss_ratio: weight of the branch's loss (0.01 in SupMAE).
        **kwargs: ``backbone``, ``neck``, ``head``, ... as in mmpretrain's ``MAE``. A backbone
            of type ``SemMAEViT`` also takes the masks the data samples carry.

    The train data set must carry labels (``gt_label`` in every data sample).
    """

    def __init__(self, cls_head: Union[dict, nn.Module], cls_loss_ratio: float = 0.01,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.cls_head = cls_head if isinstance(cls_head, nn.Module) else MODELS.build(cls_head)
        self.cls_loss_ratio = cls_loss_ratio

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Losses of a batch of images ``(B, 3, H, W)`` with their labelled data samples.

        The mask is ``data_sample.mask`` (``(H', W')`` or ``(L,)`` bool, True = masked, the same
        count in every image) when the samples carry one, else MAE's random one.
        Returns ``loss_rec`` (MAE's masked-patch pixel loss), ``loss_cls``
        (``cls_loss_ratio * CE(logits / temperature, label)``) and the branch's batch top-k
        accuracy (``accuracy_top-k``, logged only: mmengine optimises the sum of the keys that
        contain ``loss``).
        """
        given = SemMAE.masks_from_samples(data_samples)
        if isinstance(given, torch.Tensor) and not isinstance(self.backbone, SemMAEViT):
            # a stock MAEViT would draw its own random mask and silently ignore this one
            raise ValueError(
                f'The data samples carry masks, but the backbone {type(self.backbone).__name__} '
                "cannot take one. Fix: model.backbone.type='SemMAEViT' (same parameters), or "
                'drop the mask generator to mask at random.')
        latent, mask, ids_restore = self.backbone(inputs, mask=given)  # (B, 1 + N_visible, C)
        pred = self.neck(latent, ids_restore)
        losses = dict(loss_rec=self.head.loss(pred, inputs, mask))
        branch = self.cls_head.loss(latent, data_samples)
        losses['loss_cls'] = self.cls_loss_ratio * branch.pop('loss')
        losses.update(branch)
        return losses
