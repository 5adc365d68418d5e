"""An epoch-based train loop that resumes a run killed mid-epoch exactly where it stopped.

mmengine 0.10's ``EpochBasedTrainLoop`` restores the iteration count from a checkpoint, but
restarts the resumed epoch from its first batch: a checkpoint taken at iteration ``j`` inside
an epoch re-trains the ``j - epoch * len`` batches already seen, runs past the epoch's end
and shifts every later iteration's batch, learning rate and schedule. It also re-seeds the
random generators, so crops and masks differ from the uninterrupted run.
"""
import logging
from typing import Iterable, Optional

import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.registry import LOOPS
from mmengine.runner import EpochBasedTrainLoop

from .checkpoint_rng import restore_rng_state, take_rng_state


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` (same arguments) that continues a mid-epoch checkpoint exactly.

    After a resume at iteration ``j`` of epoch ``e`` (``d = j - e * len(dataloader)`` batches
    of ``e`` done), the epoch goes on with batch ``d`` of the same permutation: a sampler with
    ``skip`` (``ResumableSampler``) leaves out the ``d * batch_size`` consumed indices of each
    rank without loading them; any other sampler's first ``d`` batches are loaded and dropped.
    ``batch_idx`` continues from ``d``, so logs and interval hooks match the uninterrupted run.

    Random state: checkpoints written by ``AtomicCheckpointHook`` hold each rank's generator
    states, restored just before the first resumed batch is loaded. The train and val
    dataloaders get a private ``torch.Generator`` (they would otherwise draw their workers'
    base seed from the global generator each time an iterator starts, shifting the training
    stream between a run and its resumption). With ``num_workers=0`` the resumed run then
    repeats the uninterrupted one bit for bit (crops, masks, losses); with workers, the
    augmentation in the workers restarts from the worker seeds (mmengine seeds them per
    rank and worker), everything drawn in the main process is exact.
    """

    _offset = 0
    _rng_state: Optional[dict] = None

    def run(self) -> torch.nn.Module:
        seed = (self.runner.seed or 0) + get_rank()
        val_loop = self.runner.val_loop
        for loader in (self.dataloader, getattr(val_loop, 'dataloader', None)):
            if loader is not None and loader.generator is None:
                loader.generator = torch.Generator().manual_seed(seed)
        self._rng_state = take_rng_state(self.runner.message_hub)
        self._offset = self._resume_offset()
        return super().run()

    def _resume_offset(self) -> int:
        """Batches of the current epoch that the resumed checkpoint already trained."""
        done = self._iter - self._epoch * len(self.dataloader)
        if 0 <= done <= len(self.dataloader):
            return done
        print_log(f'Resumed at iteration {self._iter} of epoch {self._epoch + 1}, which does not '
                  f'fit epochs of {len(self.dataloader)} iterations (did the batch size or the '
                  'data change?): the epoch restarts from its first batch.',
                  logger='current', level=logging.WARNING)
        return 0

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        offset, self._offset = self._offset, 0
        batches = self._batches_from(offset)
        if self._rng_state is not None:
            restore_rng_state(self._rng_state)
            self._rng_state = None
        for idx, data_batch in enumerate(batches, start=offset):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _batches_from(self, offset: int) -> Iterable:
        """The epoch's batches from batch ``offset`` on."""
        loader = self.dataloader
        if offset == 0:
            return iter(loader)
        print_log(f'Resuming mid-epoch: epoch {self._epoch + 1} continues at batch '
                  f'{offset + 1}/{len(loader)}.', logger='current')
        if hasattr(loader.sampler, 'skip') and loader.batch_size:
            loader.sampler.skip(offset * loader.batch_size)
            return iter(loader)
        print_log(f'{type(loader.sampler).__name__} cannot skip samples: loading and dropping '
                  f'the {offset} batches already trained (use ResumableSampler to avoid it).',
                  logger='current', level=logging.WARNING)
        batches = iter(loader)
        for _ in range(offset):
            next(batches)
        return batches
