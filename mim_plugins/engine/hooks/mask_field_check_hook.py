"""Refuse, before the first step, a model whose data preprocessor writes a mask field that the
algorithm never reads (whoever built the runner: tools/train.py, ``mim train``, OpenMMLab's
tools)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...models.sample_masks import check_mask_fields
from .checkpoint_report_hook import loaded_module


@HOOKS.register_module()
class MaskFieldCheckHook(Hook):
    """Runs :func:`~mim_plugins.models.sample_masks.check_mask_fields` on the runner's model in
    ``before_run``. Our algorithms check themselves when they are built; this covers stock
    mmpretrain algorithms (MAE, BEiT, MaskFeat, SimMIM) paired with ``MaskingDataPreprocessor``,
    which cannot. ``configs/_base_/mim_runtime.py`` lists it for every config."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        check_mask_fields(loaded_module(runner.model))
