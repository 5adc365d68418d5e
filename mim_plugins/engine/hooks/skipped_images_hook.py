"""Counts the unreadable images that ``SkipCorruptImages`` replaced, and logs them per epoch."""
import logging
import os.path as osp
from typing import List

from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ...datasets.skip_corrupt import SKIPPED_KEY

#: file in the work dir listing every skipped image, one ``epoch<TAB>path`` per line
SKIPPED_FILE = 'skipped_images.txt'


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Reads ``metainfo['skipped_images']`` from every training batch; after each epoch logs
    "Epoch N: skipped K unreadable images (T so far)" with the first ``show`` paths (all
    ranks together; T survives ``--resume``), appends them all to
    ``WORK_DIR/skipped_images.txt`` and sets the message-hub scalar ``train/skipped_images``
    to K (after a mid-epoch resume, that epoch's K covers the resumed part only)."""

    priority = 'BELOW_NORMAL'

    def __init__(self, show: int = 5):
        self.show = show
        self._epoch_paths: List[str] = []

    def before_train_epoch(self, runner) -> None:
        self._epoch_paths = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        for sample in (data_batch or {}).get('data_samples') or []:
            self._epoch_paths.extend(sample.metainfo.get(SKIPPED_KEY, ()))

    def after_train_epoch(self, runner) -> None:
        paths = [p for rank in all_gather_object(self._epoch_paths) for p in rank]
        total = runner.message_hub.get_info('skipped_images_total', 0) + len(paths)
        runner.message_hub.update_info('skipped_images_total', total)  # kept by --resume
        runner.message_hub.update_scalar('train/skipped_images', len(paths))
        if not paths:
            return
        shown = ', '.join(paths[:self.show]) + (', ...' if len(paths) > self.show else '')
        print_log(f'Epoch {runner.epoch + 1}: skipped {len(paths)} unreadable images '
                  f'({total} so far, listed in {SKIPPED_FILE}): {shown}',
                  logger='current', level=logging.WARNING)
        if is_main_process():
            with open(osp.join(runner.work_dir, SKIPPED_FILE), 'a') as f:
                f.writelines(f'{runner.epoch + 1}\t{p}\n' for p in paths)
