"""Refuse to evaluate a model that the checkpoint did not load."""
import re
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...utils.errors import UserInputError
from ..checkpoint_report import load_mismatch
from .checkpoint_report_hook import loaded_module


@HOOKS.register_module()
class RequireLoadedWeightsHook(Hook):
    """Before a test (``before_test``), raise ``UserInputError`` when the checkpoint the runner
    read (``after_load_checkpoint``) lacked a tensor of the model or had it in another shape:
    mmengine loads non-strictly, so a checkpoint of another architecture leaves the model
    randomly initialised and the test would report the accuracy of random weights. The message
    names the file and the missing / different-shape / unused counts.

    Training is left alone (a fine-tune's ``load_from`` may lack the new head), so the hook can
    sit in a base config; ``tools/test.py`` adds it unless ``--allow-missing-weights``, which
    also removes a listed one.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._refusal: Optional[str] = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', checkpoint)
        # mmengine's default revise_keys: a DDP-saved file has 'module.' before every name
        state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
        model_state = loaded_module(runner.model).state_dict()
        missing, unused, shape = load_mismatch(model_state, state)
        self._refusal = None if not (missing or shape) else (
            f"The checkpoint '{runner._load_from}' does not hold this model's weights: "
            f"{len(missing)} of the model's {len(model_state)} tensors are not in it, "
            f'{len(shape)} have another shape, and {len(unused)} of its tensors are not used '
            "by the model (a test would score random weights). Fix: pass the config the "
            'checkpoint was trained with, or --allow-missing-weights if that is intended.')

    def before_test(self, runner) -> None:
        if self._refusal:
            raise UserInputError(self._refusal)
