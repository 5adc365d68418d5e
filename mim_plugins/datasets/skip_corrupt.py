"""A dataset wrapper that skips (and reports) images that cannot be decoded, or stops at the
first one with an error naming it."""
import os.path as osp
from typing import List, Union

from mmengine.structures import BaseDataElement
from mmpretrain.registry import DATASETS
from PIL import UnidentifiedImageError

from ..utils.errors import UserInputError

#: metainfo key of a data sample that replaces unreadable images: their paths
SKIPPED_KEY = 'skipped_images'


def is_unreadable_image(exc: BaseException) -> bool:
    """Whether ``exc`` is an image that could not be read or decoded (not a bug, not another
    user error such as a missing part map): mmcv's ``failed to load image`` (cv2 decoding),
    cv2's refusal of an empty (0-byte) file, PIL's unidentified or truncated files, or a
    vanished image file."""
    if isinstance(exc, UserInputError):
        return False
    if type(exc).__name__ == 'error' and type(exc).__module__.startswith('cv2'):
        return '!buf.empty()' in str(exc)  # mmcv passes cv2 the bytes of a 0-byte file
    if isinstance(exc, AssertionError):
        return str(exc).startswith('failed to load image')
    if isinstance(exc, (UnidentifiedImageError, FileNotFoundError)):
        return True
    return isinstance(exc, OSError) and 'truncated' in str(exc)


def unreadable_message(path: str) -> str:
    """The one line for an image that cannot be decoded, with the fixes."""
    empty = osp.isfile(path) and osp.getsize(path) == 0
    what = 'is empty (0 bytes)' if empty else 'could not be decoded'
    return (f'Corrupt or unreadable image {path}: the file {what}. Fix: replace it with a valid '
            'image or delete it (and its line in the annotation file, if the data set has one), '
            'or train with --skip-corrupt-images to skip and count such files.')


def tag_skipped(data: dict, skipped: List[str], owner: str) -> None:
    """Record ``skipped`` (the unreadable images a sample replaced) under ``SKIPPED_KEY`` in
    the metainfo of ``data``'s packed data sample, where ``SkippedImagesHook`` counts them."""
    samples = data.get('data_samples') if isinstance(data, dict) else None
    if not isinstance(samples, BaseDataElement):
        raise TypeError(f"{owner} reports skipped images in the packed data sample, but the "
                        "pipeline's output has none. Fix: end the pipeline with PackInputs.")
    samples.set_metainfo({SKIPPED_KEY: list(skipped)})


@DATASETS.register_module()
class SkipCorruptImages:
    """Wraps a pretraining dataset: an image that cannot be decoded is replaced by the next
    readable sample (index ``i+1``, ``i+2``, ... modulo the length, so the choice is
    deterministic and an exact resume stays exact) and its path travels with the replacement
    as ``data_sample.metainfo['skipped_images']``, from the dataloader workers to the main
    process, where ``SkippedImagesHook`` counts and logs them per epoch.

    With ``skip=False`` the first unreadable image stops training with one error naming the
    file (mmcv's own errors do not name a 0-byte one). ``tools/train.py`` wraps the training
    set so, and ``--skip-corrupt-images`` makes it ``skip=True`` and adds the hook.

    Args:
        dataset: the wrapped dataset or its config.
        max_consecutive: give up (``UserInputError``) after this many unreadable images in a
            row: the data set, not one file, is broken.
        skip: replace unreadable images (True) or stop at the first one (False).
    """

    def __init__(self, dataset: Union[dict, object], max_consecutive: int = 100,
                 skip: bool = True):
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.max_consecutive = max_consecutive
        self.skip = skip

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def full_init(self) -> None:
        self.dataset.full_init()

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        skipped: List[str] = []
        for step in range(min(self.max_consecutive, len(self))):
            index = (idx + step) % len(self)
            try:
                data = self.dataset[index]
            except Exception as exc:  # noqa: BLE001  (re-raised unless an unreadable image)
                if not is_unreadable_image(exc):
                    raise
                path = self.get_data_info(index).get('img_path', f'index {index}')
                if not self.skip:
                    raise UserInputError(unreadable_message(path)) from None
                skipped.append(path)
                continue
            if skipped:
                tag_skipped(data, skipped, 'SkipCorruptImages')
            return data
        raise UserInputError(
            f'{len(skipped)} images in a row could not be read, from {skipped[0]} to '
            f'{skipped[-1]}: the data set looks broken, not one file. Fix: check the data '
            'folder (disk, permissions, an unfinished copy) and the annotation file.')
