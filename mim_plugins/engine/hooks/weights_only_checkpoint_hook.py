"""Checkpoints that torch's default weights-only loader reads, and stock ones read safely."""
import contextlib
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..plain_checkpoint import from_plain, to_plain
from ..safe_checkpoints import check_numeric, stock_checkpoint_globals


@HOOKS.register_module()
class WeightsOnlyCheckpointHook(Hook):
    """Makes every checkpoint the run writes loadable with no allowlist, and lets the run read
    stock mmengine checkpoints only while it loads them.

    - ``before_save_checkpoint``: the message hub's ``HistoryBuffer`` objects and the numpy
      arrays and scalars anywhere in the checkpoint become tagged tensors and plain data
      (:func:`~mim_plugins.engine.plain_checkpoint.to_plain`);
    - ``after_load_checkpoint`` (mmengine calls it right after reading the file, before
      ``Runner.resume`` reads the message hub): they come back as they were;
    - from ``before_run`` (the runner initialises ``init_cfg`` weights and reads
      ``load_from`` / ``--resume`` right after it) to the first of ``before_train`` /
      ``before_val`` / ``before_test`` / ``after_run``: stock mmengine checkpoints load through
      the restricted stand-ins of :func:`~mim_plugins.engine.stock_checkpoint_globals`.

    The lowest priority: it encodes after every other hook has added its entries. If a load
    raises, the window stays open until the next run in the process opens its own (or the
    process ends); what it allows is the stand-ins, never the real functions.
    """

    priority = 'LOWEST'
    # One window per process, shared by the hook's instances: when a load raises, the runner
    # calls no further hook and the stand-ins stay allowed until the next run opens its window
    # (which closes this one first) or the process ends.
    _window: Optional[contextlib.ExitStack] = None

    def before_run(self, runner) -> None:
        self._loaded()
        window = contextlib.ExitStack()
        window.enter_context(stock_checkpoint_globals())
        WeightsOnlyCheckpointHook._window = window

    def _loaded(self, runner=None) -> None:
        if WeightsOnlyCheckpointHook._window is not None:
            WeightsOnlyCheckpointHook._window.close()
            WeightsOnlyCheckpointHook._window = None

    before_train = before_val = before_test = after_run = _loaded

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        check_numeric(checkpoint)
        for key in list(checkpoint):
            checkpoint[key] = from_plain(checkpoint[key])
