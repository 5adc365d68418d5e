"""SupMAE's supervised branch as a reusable head: classify an image from encoder tokens.

The branch only sees the tokens it is given. Fed by mmpretrain's ``MAEViT`` in pretraining mode
(cls token + the VISIBLE patch tokens), its logits cannot depend on the masked patches, which is
SupMAE's point: classification from a visible subset of the image. Encoders that keep every
position (BEiT, MaskFeat: mask tokens replace the masked patches) feed it all tokens plus their
mask, and the average pool then skips the masked positions.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

POOLS = ('avg', 'cls')
HEADS = ('linear', 'mlp')


def gt_labels(data_samples: Optional[Sequence[DataSample]]) -> Tensor:
    """The ``gt_label`` of every sample concatenated: a long tensor ``(B,)``.

    Raises ``ValueError`` naming the fix when a sample carries no label: the supervised branch
    needs a labelled pretraining set.
    """
    if not data_samples or any('gt_label' not in s for s in data_samples):
        raise ValueError(
            'The supervised branch (VisibleTokenClsHead) needs a class label for every image, '
            'but the batch has samples without `gt_label`. Fix: pretrain on a labelled data set: '
            'set `with_label=True` on the train dataset (mmpretrain ImageNet / CustomDataset with '
            'class sub-folders train/<class>/*.jpg or an annotation file of "path label" lines).')
    return torch.cat([s.gt_label for s in data_samples])


@MODELS.register_module()
class VisibleTokenClsHead(ClsHead):
    """Classification head on transformer tokens (SupMAE's branch, Liang et al. 2022).

    Input ``tokens``: a tensor ``(B, T + N, C)`` (or a tuple/list whose last item is one), the
    ``T = num_cls_tokens`` class tokens first, then ``N`` patch tokens, e.g. the encoder output of
    ``MAEViT`` in pretraining (``T = 1``, ``N`` = visible patches only). The optional ``mask``
    ``(B, N)`` (``True``/1 = masked) is for encoders that return all ``N`` positions.

    Args:
        num_classes: number of classes.
        in_channels: token width ``C``.
        pool: ``'avg'``, the mean of the (visible) patch tokens, as SupMAE pretrains; or
            ``'cls'``, the first class token.
        head: ``'linear'`` (one ``Linear(C, num_classes)``) or ``'mlp'``
            (``Linear(C, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, num_classes)``, SupMAE's
            default).
        hidden_channels: width of the MLP's hidden layer (3072 in SupMAE).
        temperature: the loss is computed on ``logits / temperature`` (10 in SupMAE).
        norm_cfg: optional norm layer after pooling, for encoders whose output is not normalised.
            SupMAE pools the already final-normed MAEViT output, so the default is none.
        num_cls_tokens: leading class tokens ``T`` to skip in the average pool.
        loss: loss config, applied to ``(logits / temperature, labels)``.
        topk, cal_acc, init_cfg: as in mmpretrain's ``ClsHead``; ``cal_acc`` adds the batch top-k
            accuracy to the loss dict (a key without ``loss`` in it: logged, not optimised).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 pool: str = 'avg',
                 head: str = 'mlp',
                 hidden_channels: int = 3072,
                 temperature: float = 1.0,
                 norm_cfg: Optional[dict] = None,
                 num_cls_tokens: int = 1,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        if pool not in POOLS:
            raise ValueError(f'pool must be one of {POOLS}, got {pool!r}')
        if head not in HEADS:
            raise ValueError(f'head must be one of {HEADS}, got {head!r}')
        if not temperature > 0:
            raise ValueError(f'temperature must be positive, got {temperature!r}')
        if pool == 'cls' and num_cls_tokens < 1:
            raise ValueError("pool='cls' needs a class token: num_cls_tokens must be >= 1")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.pool = pool
        self.temperature = temperature
        self.num_cls_tokens = num_cls_tokens
        self.norm = build_norm_layer(norm_cfg, in_channels)[1] if norm_cfg else nn.Identity()
        if head == 'linear':
            self.fc = nn.Linear(in_channels, num_classes)
        else:
            self.fc = nn.Sequential(
                nn.Linear(in_channels, hidden_channels),
                # BatchNorm needs real batch statistics: SupMAE warns against gradient accumulation
                nn.BatchNorm1d(hidden_channels),
                nn.ReLU(inplace=True),
                nn.Linear(hidden_channels, num_classes))

    def pre_logits(self, tokens: Union[Tensor, Sequence[Tensor]],
                   mask: Optional[Tensor] = None,
                   num_cls_tokens: Optional[int] = None) -> Tensor:
        """Pooled feature ``(B, C)`` of ``tokens`` ``(B, T + N, C)``; see the class docstring.
        ``num_cls_tokens`` (the algorithm's encoder knows it) overrides the configured ``T``."""
        if isinstance(tokens, (tuple, list)):
            tokens = tokens[-1]
        if tokens.dim() != 3 or tokens.shape[-1] != self.in_channels:
            raise ValueError(f'VisibleTokenClsHead expects tokens (B, T + N, {self.in_channels}) '
                             f'with the class token(s) first, got shape {tuple(tokens.shape)}')
        if self.pool == 'cls':
            return self.norm(tokens[:, 0])
        skip = self.num_cls_tokens if num_cls_tokens is None else num_cls_tokens
        patches = tokens[:, skip:]
        if mask is None:
            return self.norm(patches.mean(dim=1))
        if mask.shape != patches.shape[:2]:
            raise ValueError(f'mask {tuple(mask.shape)} must be (B, N) for the {patches.shape[1]} '
                             f'patch tokens after {skip} class token(s)')
        visible = (~mask.bool()).unsqueeze(-1).to(patches.dtype)
        return self.norm((patches * visible).sum(dim=1) / visible.sum(dim=1).clamp(min=1))

    def forward(self, tokens: Union[Tensor, Sequence[Tensor]],
                mask: Optional[Tensor] = None, num_cls_tokens: Optional[int] = None) -> Tensor:
        """Logits ``(B, num_classes)``, before the temperature."""
        return self.fc(self.pre_logits(tokens, mask, num_cls_tokens))

    def loss(self, tokens: Union[Tensor, Sequence[Tensor]], data_samples: List[DataSample],
             mask: Optional[Tensor] = None, num_cls_tokens: Optional[int] = None,
             **kwargs) -> dict:
        """``{'loss': loss(logits / temperature, labels)}`` plus ``accuracy_top-k`` (percent)
        when ``cal_acc``; labels come from ``data_samples[i].gt_label``."""
        target = gt_labels(data_samples)  # before the forward: fail fast on unlabelled data
        logits = self(tokens, mask, num_cls_tokens)
        losses = dict(loss=self.loss_module(logits / self.temperature, target,
                                            avg_factor=logits.size(0), **kwargs))
        if self.cal_acc:
            topk = (self.topk, ) if isinstance(self.topk, int) else self.topk
            ranked = logits.detach().topk(max(topk), dim=1).indices
            hits = ranked == target.to(ranked.device).unsqueeze(1)
            for k in topk:
                losses[f'accuracy_top-{k}'] = hits[:, :k].any(dim=1).float().mean() * 100
        return losses

    def predict(self, tokens: Union[Tensor, Sequence[Tensor]],
                data_samples: Optional[List[Optional[DataSample]]] = None,
                mask: Optional[Tensor] = None) -> List[DataSample]:
        """Data samples with ``pred_score`` (softmax of ``logits / temperature``) and
        ``pred_label``."""
        return self._get_predictions(self(tokens, mask) / self.temperature, data_samples)
