"""Training hooks; importing the package registers them (SemMAE's into mmpretrain's HOOKS, the
general ones into mmengine's, which mmpretrain and mmseg configs both see)."""
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .checkpoint_report_hook import CheckpointReportHook
from .mask_check_hook import MaskCheckHook
from .nan_guard_hook import NaNGuardHook, NonFiniteLossError
from .require_loaded_weights_hook import RequireLoadedWeightsHook
from .resume_guard_hook import ResumeGuardHook
from .semmae_lambda_hook import SemMAELambdaHook
from .skipped_images_hook import SkippedImagesHook
from .weights_only_checkpoint_hook import WeightsOnlyCheckpointHook

__all__ = ['AtomicCheckpointHook', 'CheckpointReportHook', 'MaskCheckHook', 'NaNGuardHook',
           'NonFiniteLossError', 'RequireLoadedWeightsHook', 'ResumeGuardHook', 'SemMAELambdaHook',
           'SkippedImagesHook', 'WeightsOnlyCheckpointHook']
