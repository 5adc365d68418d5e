"""Training hooks; importing the package registers them (SemMAE's into mmpretrain's HOOKS, the
general ones into mmengine's, which mmpretrain and mmseg configs both see)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .checkpoint_report_hook import CheckpointReportHook
from .mask_field_check_hook import MaskFieldCheckHook
from .nan_guard_hook import NaNGuardHook, NonFiniteLossError
from .semmae_lambda_hook import SemMAELambdaHook
from .skipped_images_hook import SkippedImagesHook

__all__ = ['AtomicCheckpointHook', 'CheckpointReportHook', 'MaskFieldCheckHook', 'NaNGuardHook',
           'NonFiniteLossError', 'SemMAELambdaHook', 'SkippedImagesHook']
