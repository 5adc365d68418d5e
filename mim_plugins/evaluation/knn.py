"""Weighted k-NN classification of frozen features (the DINO protocol), and its runner.

DINO (Caron et al. 2021, ``eval_knn.py``): features are L2-normalised, each test image takes the
k train images of highest cosine similarity, and each of those votes for its class with weight
``exp(similarity / T)``; the class with the largest summed weight wins (k=20, T=0.07).
:func:`knn_classify` is that rule as a pure function; :func:`run_knn_probe` applies it to the
backbone of any mmpretrain config (its train set as the labelled bank, its val set as queries).
"""
import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from ..utils.errors import UserInputError

FEATURES = ('cls', 'mean')


def knn_classify(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 k: int = 20, temperature: float = 0.07, num_classes: Optional[int] = None,
                 chunk_size: int = 256) -> torch.Tensor:
    """Class scores of a weighted k-NN vote under cosine similarity.

    Args:
        train_feats: (N, D) features of the labelled bank (any scale: normalised here).
        train_labels: (N,) int class ids in ``[0, num_classes)``.
        test_feats: (M, D) features of the queries.
        k: neighbours per query, ``1 <= k <= N``. A larger k is an error (not clamped): the vote
            would silently become a different rule.
        temperature: T in the vote weight ``exp(cos / T)``.
        num_classes: C; default ``max(train_labels) + 1``.
        chunk_size: queries per similarity block (memory is ``chunk_size x N``).

    Returns:
        (M, C) float scores: for each query and class, the sum of ``exp(cos / T)`` over those of
        its k nearest train features that have that class (0 for classes without a neighbour).
    """
    n = train_feats.shape[0]
    if train_labels.shape != (n,) or test_feats.ndim != 2 or train_feats.ndim != 2 or \
            test_feats.shape[1] != train_feats.shape[1]:
        raise ValueError(f'knn_classify: train_feats {tuple(train_feats.shape)}, train_labels '
                         f'{tuple(train_labels.shape)}, test_feats {tuple(test_feats.shape)}: '
                         'expected (N, D), (N,), (M, D)')
    if not 1 <= k <= n:
        raise UserInputError(f'k-NN with k={k} needs at least k labelled train images, and the '
                             f'train set has {n}. Fix: choose k between 1 and {n} (--k), or use '
                             'a larger labelled set.')
    num_classes = int(train_labels.max()) + 1 if num_classes is None else num_classes
    train = F.normalize(train_feats.float(), dim=1)
    labels = train_labels.long()
    scores = []
    for start in range(0, test_feats.shape[0], chunk_size):
        query = F.normalize(test_feats[start:start + chunk_size].float(), dim=1)
        sims, idx = (query @ train.T).topk(k, dim=1)  # (m, k)
        weights = (sims / temperature).exp()
        votes = torch.zeros(query.shape[0], num_classes, dtype=weights.dtype,
                            device=weights.device)
        scores.append(votes.scatter_add_(1, labels[idx], weights))
    if not scores:
        return torch.zeros(0, num_classes)
    return torch.cat(scores)


def knn_accuracy(scores: torch.Tensor, labels: torch.Tensor,
                 num_classes: int) -> Dict[str, float]:
    """``{'accuracy/top1': %, 'accuracy/top5': %}`` (top-5 only when there are >= 5 classes),
    by mmpretrain's ``Accuracy`` metric on the (M, C) scores of :func:`knn_classify`."""
    from mmpretrain.evaluation import Accuracy

    topk = (1, 5) if num_classes >= 5 else (1, )
    accs = Accuracy.calculate(scores, labels.long(), topk=topk)
    return {f'accuracy/top{t}': round(float(a[0]), 3) for t, a in zip(topk, accs)}


def select_feature(tokens: torch.Tensor, feature: str, num_extra_tokens: int) -> torch.Tensor:
    """(B, N, C) ViT tokens (cls / extra tokens first) -> (B, C): the cls token (``'cls'``) or
    the mean of the patch tokens (``'mean'``)."""
    if feature == 'cls':
        if num_extra_tokens < 1:
            raise UserInputError("--feature cls needs a ViT with a cls token (with_cls_token="
                                 "True). Fix: use --feature mean.")
        return tokens[:, 0]
    if feature == 'mean':
        return tokens[:, num_extra_tokens:].mean(dim=1)
    raise UserInputError(f"Unknown k-NN feature {feature!r}. Fix: choose one of {FEATURES}.")


class FeatureExtractor(nn.Module):
    """A frozen backbone -> (B, D) features.

    A ViT (mmpretrain ``VisionTransformer`` or a subclass) is rebuilt with ``out_type='raw'`` and
    ``out_indices=layer`` and returns the cls token or the mean patch token of that layer (after
    the final norm for the last layer when the config has ``final_norm=True``). Any other
    backbone returns its last output, averaged over space if it is a (B, C, H, W) map.
    """

    def __init__(self, backbone: nn.Module, feature: Optional[str]) -> None:
        super().__init__()
        self.backbone, self.feature = backbone, feature
        self.is_vit = hasattr(backbone, 'num_extra_tokens') and hasattr(backbone, 'out_type')

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.backbone(images)
        out = out[-1] if isinstance(out, (tuple, list)) else out
        if self.is_vit:
            return select_feature(out, self.feature, self.backbone.num_extra_tokens)
        return out.mean(dim=(2, 3)) if out.ndim == 4 else out.flatten(1)


def _is_vit(backbone_cfg: dict) -> bool:
    from mmpretrain.models.backbones import VisionTransformer
    from mmpretrain.registry import MODELS

    cls = MODELS.get(backbone_cfg.get('type', ''))
    return isinstance(cls, type) and issubclass(cls, VisionTransformer)


def build_extractor(cfg: Config, checkpoint: Optional[str], feature: Optional[str] = None,
                    layer: int = -1) -> Tuple[FeatureExtractor, str]:
    """The frozen feature extractor of ``cfg.model.backbone`` with the checkpoint's
    ``backbone.*`` weights (every weight of the backbone must be there), or the backbone's own
    random initialisation when ``checkpoint`` is None. Returns (extractor, description)."""
    from mmpretrain.registry import MODELS

    from ..visualization.loading import read_state_dict

    backbone_cfg = copy.deepcopy(dict(cfg.model.get('backbone') or {}))
    if not backbone_cfg:
        raise UserInputError('The config has no model.backbone. Fix: pass a classification or '
                             'linear-probe config (configs/*/benchmarks/*).')
    backbone_cfg['init_cfg'] = None  # the weights are loaded below, or stay random
    vit = _is_vit(backbone_cfg)
    if vit:
        backbone_cfg.update(out_type='raw', out_indices=-1)
        feature = feature or 'cls'
        if feature not in FEATURES:
            raise UserInputError(f"Unknown k-NN feature {feature!r}. Fix: choose one of "
                                 f'{FEATURES}.')
    elif feature is not None or layer != -1:
        raise UserInputError(f"--feature/--layer choose a ViT's tokens, and this backbone is "
                             f"{backbone_cfg.get('type')!r}: its last output is the feature. "
                             'Fix: drop --feature and --layer.')
    torch.manual_seed((cfg.get('randomness') or {}).get('seed') or 0)  # a reproducible init
    backbone = MODELS.build(backbone_cfg)
    if vit:
        depth = backbone.num_layers
        if not -depth <= layer < depth:
            raise UserInputError(f'--layer {layer} is not a layer of this {depth}-layer ViT. '
                                 f'Fix: give 0..{depth - 1}, or -1 for the last.')
        backbone.out_indices = [layer % depth]
    if not any(True for _ in backbone.parameters()):
        if checkpoint is not None:
            raise UserInputError(f"The backbone {backbone_cfg.get('type')} has no weights, so "
                                 f"checkpoint '{checkpoint}' would not be used. Fix: drop it.")
        what = f"{backbone_cfg.get('type')} (no weights)"
    elif checkpoint is None:
        backbone.init_weights()
        what = 'random initialisation'
    else:
        state = read_state_dict(checkpoint)
        if any(k.startswith('backbone.') for k in state):
            state = {k[len('backbone.'):]: v for k, v in state.items()
                     if k.startswith('backbone.')}
        own = backbone.state_dict()
        missing = [k for k in own if k not in state]
        if len(missing) == len(own):
            raise UserInputError(
                f"Checkpoint '{checkpoint}' holds no weights of the backbone "
                f"({backbone_cfg.get('type')}; its keys look like {sorted(state)[:2]}). Fix: pass "
                "a pretraining or classification checkpoint whose encoder is under 'backbone.' "
                '(as tools/train.py writes it), or a bare backbone state dict.')
        if missing:
            raise UserInputError(
                f"Checkpoint '{checkpoint}' lacks {len(missing)} of the backbone's "
                f'{len(own)} weights (e.g. {missing[:3]}). Fix: pass the config the checkpoint '
                'was trained with, or a checkpoint of this architecture.')
        try:  # (the ViT's load hook resizes a position embedding of another grid)
            backbone.load_state_dict({k: state[k] for k in own}, strict=True)
        except RuntimeError as exc:
            first = str(exc).split('\n\t')[1] if '\n\t' in str(exc) else str(exc)
            raise UserInputError(f"Checkpoint '{checkpoint}' does not fit the backbone of the "
                                 f'config: {first.strip()} Fix: pass the config the checkpoint '
                                 'was trained with.') from None
        what = checkpoint
    backbone.eval()  # (mmpretrain's ViT.train() returns None: no chaining)
    backbone.requires_grad_(False)
    if vit:
        what += f', {feature} token{"s" if feature == "mean" else ""} of layer {layer}'
    return FeatureExtractor(backbone, feature if vit else None), what


def _loader_cfg(cfg: Config, key: str, batch_size: Optional[int]) -> dict:
    """``cfg[key]`` read in order, without augmentation: the val pipeline, no shuffling."""
    loader = copy.deepcopy(cfg.get(key))
    if not loader:
        raise UserInputError(f'The config has no {key}. Fix: pass a classification or '
                             'linear-probe config (configs/*/benchmarks/*).')
    pipeline = cfg.val_dataloader.dataset.get('pipeline')
    dataset = loader['dataset']
    while 'dataset' in dataset and 'pipeline' not in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    dataset['pipeline'] = copy.deepcopy(pipeline)
    loader.update(sampler=dict(type='DefaultSampler', shuffle=False), drop_last=False)
    if batch_size:
        loader['batch_size'] = batch_size
    return loader


@torch.no_grad()
def extract_features(extractor: nn.Module, preprocessor: nn.Module, loader,
                     device: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run ``extractor`` over an mmengine dataloader -> ((n, D) features, (n,) labels)."""
    feats, labels = [], []
    for data in loader:
        data = preprocessor(data, False)
        feats.append(extractor(data['inputs'].to(device)).float())
        labels.append(torch.cat([s.gt_label for s in data['data_samples']]).to(device))
    return torch.cat(feats), torch.cat(labels)


def _check_labels(dataset, key: str) -> None:
    if len(dataset) == 0:
        raise UserInputError(f'The data set of {key} is empty. Fix: point its data_root / '
                             'ann_file at images.')
    if 'gt_label' not in dataset.get_data_info(0):
        raise UserInputError(f'The data set of {key} has no labels (e.g. with_label=False, as '
                             'for pretraining). Fix: pass a classification or linear-probe '
                             'config, whose train and val sets are labelled.')


def _num_classes(datasets: Sequence, labels: Sequence[torch.Tensor]) -> int:
    found = [len(d.metainfo.get('classes') or ()) for d in datasets]
    return max(found + [int(t.max()) + 1 for t in labels if t.numel()])


def run_knn_probe(cfg: Config, checkpoint: Optional[str], k: int = 20,
                  temperature: float = 0.07, feature: Optional[str] = None, layer: int = -1,
                  device: Optional[str] = None, batch_size: Optional[int] = None) -> Dict:
    """k-NN accuracy of the config's backbone (weights from ``checkpoint``; None: random init)
    with the config's ``train_dataloader`` set as the labelled bank and its ``val_dataloader``
    set as the queries, both through the val pipeline. One process; features stay on
    ``device`` (ImageNet-1k at 768-d: 3.9 GB). Returns the accuracies (%) and the settings."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmpretrain.registry import MODELS

    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    extractor, what = build_extractor(cfg, checkpoint, feature, layer)
    extractor.to(device)
    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    pre = dict(pre)
    pre.setdefault('type', 'ClsDataPreprocessor')
    preprocessor = MODELS.build(pre).to(device)  # (it moves each batch to its device)

    banks = {}
    for key in ('train_dataloader', 'val_dataloader'):
        loader = Runner.build_dataloader(_loader_cfg(cfg, key, batch_size))
        _check_labels(loader.dataset, key)
        banks[key] = (loader.dataset, *extract_features(extractor, preprocessor, loader, device))
    (train_set, train_feats, train_labels), (val_set, val_feats, val_labels) = banks.values()
    num_classes = _num_classes([train_set, val_set], [train_labels, val_labels])
    scores = knn_classify(train_feats, train_labels, val_feats, k, temperature, num_classes)
    result = knn_accuracy(scores.cpu(), val_labels.cpu(), num_classes)
    result.update(k=k, temperature=temperature, features=what, feature_dims=train_feats.shape[1],
                  num_train=len(train_labels), num_val=len(val_labels), num_classes=num_classes)
    return result
