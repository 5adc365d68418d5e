"""Refuse, before the first step, a model whose masks would not be what its config says
(whoever built the runner: tools/train.py, ``mim train``, OpenMMLab's tools)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.mask_ratio import check_backbone_mask_ratio
from ...models.sample_masks import check_mask_fields
from .checkpoint_report_hook import loaded_module


@HOOKS.register_module()
class MaskCheckHook(Hook):
    """In ``before_run``, on the runner's model: :func:`~mim_plugins.models.sample_masks.
    check_mask_fields` (a mask field the preprocessor writes and the algorithm never reads) and
    :func:`~mim_plugins.models.mask_ratio.check_backbone_mask_ratio` (a stock ``MAEViT`` mask
    ratio outside (0, 1)). Our algorithms, generators and backbones check themselves when they
    are built; this covers stock mmpretrain algorithms and backbones, which cannot.
    ``configs/_base_/mim_runtime.py`` lists it for every config."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = loaded_module(runner.model)
        check_mask_fields(model)
        check_backbone_mask_ratio(model)
