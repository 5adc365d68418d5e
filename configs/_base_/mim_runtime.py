# The hooks every config of this project runs with, whoever launches it (tools/train.py,
# tools/dist_train.sh, `mim train`/`mim test`, mmpretrain's or mmseg's own tools/train.py): a
# root config (one that inherits no other config of ours) lists this file in `_base_` and also
# names the resilient loop, sampler and checkpoint hook, which stock bases already define (mmengine
# refuses a key defined by two bases, so those three are stated in the root config itself):
#   train_cfg = dict(type='ResumableEpochBasedTrainLoop')            exact mid-epoch --resume
#   train_dataloader = dict(sampler=dict(type='ResumableSampler'))   skips what was trained
#   default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))   crash/disk-full safe
# tests/test_entry_points.py checks every config for all of it. A config that adds hooks keeps
# these: `custom_hooks = _base_.custom_hooks + [...]`.
custom_hooks = [
    # stop at the first NaN/inf loss, before saving the diverged weights
    dict(type='NaNGuardHook'),
    # log what each loaded checkpoint filled in the model (init_cfg, load_from, --resume)
    dict(type='CheckpointReportHook'),
    # refuse a mask field the algorithm never reads, or a stock MAEViT mask ratio outside (0, 1)
    dict(type='MaskCheckHook'),
    # checkpoints written as tensors and plain data (torch's weights-only loader reads them with
    # no allowlist); stock mmengine checkpoints read through restricted stand-ins while loading
    dict(type='WeightsOnlyCheckpointHook'),
    # --resume executes no config stored in the checkpoint, and names a file it cannot resume
    dict(type='ResumeGuardHook'),
    # a test refuses a checkpoint that did not load the model's weights (tools/test.py
    # --allow-missing-weights drops it)
    dict(type='RequireLoadedWeightsHook'),
]
# a second training in the same work dir stops before it writes anything there
runner_type = 'WorkDirLockedRunner'
