"""mmengine's DefaultSampler that can start an epoch part-way, for an exact mid-epoch resume."""
import itertools
from typing import Iterator

from mmengine.dataset import DefaultSampler
from mmengine.registry import DATA_SAMPLERS


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """``DefaultSampler`` (same arguments, same order: a permutation seeded by ``seed + epoch``,
    rank ``r`` of ``W`` taking every ``W``-th index from ``r``) plus :meth:`skip`.

    ``ResumableEpochBasedTrainLoop`` calls ``skip(n)`` when a run resumes from a checkpoint taken
    mid-epoch: the epoch then continues with this rank's ``n``-th index instead of re-reading
    the ``n`` samples already trained on, without loading them. ``len()`` stays the full
    epoch's, so the dataloader length, the iteration count and the schedules do not change.
    """

    _skip = 0

    def skip(self, num_samples: int) -> None:
        """Leave out the first ``num_samples`` indices of this rank's next pass only."""
        if num_samples < 0:
            raise ValueError(f'cannot skip {num_samples} samples')
        self._skip = num_samples

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        return itertools.islice(super().__iter__(), skip, None)
