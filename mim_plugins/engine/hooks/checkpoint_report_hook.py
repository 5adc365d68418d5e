"""Report what each checkpoint a run loads did and did not fill in the model."""
from typing import List

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import HOOKS
from torch import nn

from ..checkpoint_report import LoadReporter


def loaded_module(model: nn.Module) -> nn.Module:
    """The module mmengine's ``load_state_dict`` loads into: ``model`` without its DDP / TTA
    wrappers."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def _loads_pretrained(module: nn.Module) -> bool:
    cfgs = getattr(module, 'init_cfg', None) or []
    return any(cfg.get('type') in ('Pretrained', PretrainedInit)
               for cfg in ([cfgs] if isinstance(cfgs, dict) else cfgs))


@HOOKS.register_module()
class CheckpointReportHook(Hook):
    """Logs a :func:`~mim_plugins.engine.checkpoint_report.checkpoint_report` (rank 0) for every
    checkpoint the run loads:

    - ``init_cfg=dict(type='Pretrained', ...)`` of any module: watched from ``before_run``,
      which the runner calls before it initialises the weights;
    - ``load_from`` and ``--resume``: watched from ``after_load_checkpoint``, which the runner
      calls between reading the file and loading it into the model.

    Every config lists it through ``configs/_base_/mim_runtime.py``, so it reports under every
    launcher (our tools, ``mim train/test``, OpenMMLab's tools).
    """

    def __init__(self) -> None:
        self._watching: List[LoadReporter] = []

    def _watch(self, module: nn.Module) -> None:
        if get_rank() == 0:
            self._watching.append(LoadReporter(module))

    def _stop(self) -> None:
        for reporter in self._watching:
            reporter.remove()
        self._watching = []

    def before_run(self, runner) -> None:
        for module in loaded_module(runner.model).modules():
            if _loads_pretrained(module):
                self._watch(module)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._stop()  # the weights are initialised by now (validation and testing skip it)
        self._watch(loaded_module(runner.model))
