"""SupMAE's supervised branch as a component any of our algorithms takes by config.

``cls_head=dict(type='VisibleTokenClsHead', ...)`` and ``cls_loss_ratio`` on ``MaskedMAE`` /
``SemMAE`` / ``BottleneckMAE``, ``MaskedBEiT`` / ``BottleneckBEiT`` and ``MaskedMaskFeat`` /
``BottleneckMaskFeat`` attach the branch: it classifies the visible tokens of the encoding's
main stream (:class:`~mim_plugins.models.masked_encoding.MaskedEncoding`) (the tokens the encoder computed from visible patches, never a
mask token), adds ``loss_cls = cls_loss_ratio · CE(logits / temperature, label)`` and the batch
accuracy, and renames the algorithm's ``loss`` to ``loss_rec``. The head's parameters keep
SupMAE's names (``cls_head.*``), which stay behind downstream.
"""
from typing import Dict, List, Union

from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from .masked_encoding import MaskedEncoding


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

    def add_branch(self, losses: Dict[str, Tensor], encoding: MaskedEncoding,
                   data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """``losses`` with the branch's terms added (unchanged without a branch): the head
        reads ``encoding.main`` ``(B, T + N, C)``, skips its ``num_cls`` cls tokens in the pool
        and the mask-token rows ``main_mask`` marks."""
        if not self.with_branch:
            return losses
        out = {('loss_rec' if key == 'loss' else key): value for key, value in losses.items()}
        branch = self.cls_head.loss(encoding.main, data_samples, mask=encoding.main_mask,
                                    num_cls_tokens=encoding.num_cls)
        out['loss_cls'] = self.cls_loss_ratio * branch.pop('loss')
        out.update(branch)
        return out
