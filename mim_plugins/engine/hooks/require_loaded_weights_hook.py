"""Refuse to evaluate a model that the checkpoint did not load."""
import re

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...utils.errors import UserInputError
from ..checkpoint_report import load_mismatch
from .checkpoint_report_hook import loaded_module


@HOOKS.register_module()
class RequireLoadedWeightsHook(Hook):
    """After mmengine reads ``load_from`` (``after_load_checkpoint``, before it fills the model),
    raise ``UserInputError`` when a tensor of the model is missing from the checkpoint or has
    another shape there: mmengine loads non-strictly, so a checkpoint of another architecture
    would leave the model randomly initialised and a test would report the accuracy of random
    weights. The message names the file and the missing / different / unused counts.

    ``tools/test.py`` adds it unless ``--allow-missing-weights`` is given.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('state_dict', checkpoint)
        # mmengine's default revise_keys: a DDP-saved file has 'module.' before every name
        state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
        model_state = loaded_module(runner.model).state_dict()
        missing, unused, shape = load_mismatch(model_state, state)
        if missing or shape:
            raise UserInputError(
                f"The checkpoint '{runner._load_from}' does not hold this model's weights: "
                f"{len(missing)} of the model's {len(model_state)} tensors are not in it, "
                f'{len(shape)} have another shape, and {len(unused)} of its tensors are not used '
                "by the model (a test would score random weights). Fix: pass the config the "
                'checkpoint was trained with, or --allow-missing-weights if that is intended.')
