"""SupMAE's supervised branch as a component any of our algorithms takes by config.

``cls_head=dict(type='VisibleTokenClsHead', ...)`` and ``cls_loss_ratio`` on ``SemMAE`` (MAE on
any mask, plain or bottleneck decoder), ``MaskedBEiT`` / ``BottleneckBEiT`` and
``MaskedMaskFeat`` / ``BottleneckMaskFeat`` attach the branch: it classifies the visible tokens
of the encoder's main stream (the tokens the encoder computed from visible patches, never a
mask token), adds ``loss_cls = cls_loss_ratio · CE(logits / temperature, label)`` and the batch
accuracy, and renames the algorithm's ``loss`` to ``loss_rec``. The head's parameters keep
SupMAE's names (``cls_head.*``), which stay behind downstream.
"""
from typing import Dict, List, Optional, Union

from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn


class SupervisedBranchMixin:
    """Put before the mmpretrain algorithm in the bases; ``__init__`` takes ``cls_head``
    (config or module, None = no branch) and ``cls_loss_ratio`` (0.01 in SupMAE)."""

    def __init__(self, *args, cls_head: Union[dict, nn.Module, None] = None,
                 cls_loss_ratio: float = 0.01, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(cls_head, dict):
            cls_head = MODELS.build(cls_head)
        self.cls_head = cls_head
        self.cls_loss_ratio = cls_loss_ratio

    @property
    def with_branch(self) -> bool:
        return self.cls_head is not None

    def add_branch(self, losses: Dict[str, Tensor], tokens: Tensor,
                   data_samples: List[DataSample], num_cls_tokens: int = 1,
                   mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``losses`` with the branch's terms added (unchanged without a branch).

        Args:
            tokens: ``(B, T + N, C)``: ``T = num_cls_tokens`` cls tokens, then ``N`` patch
                tokens of the main stream.
            mask: ``(B, N)`` bool, True = a position the pool must skip (a mask token), for
                encoders that return every patch position; None = all ``N`` are visible.
        """
        if not self.with_branch:
            return losses
        out = {('loss_rec' if key == 'loss' else key): value for key, value in losses.items()}
        branch = self.cls_head.loss(tokens, data_samples, mask=mask,
                                    num_cls_tokens=num_cls_tokens)
        out['loss_cls'] = self.cls_loss_ratio * branch.pop('loss')
        out.update(branch)
        return out
