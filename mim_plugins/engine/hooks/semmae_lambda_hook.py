"""Hands the epoch to the mask generator, so SemMAE's λ follows the schedule."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class SemMAELambdaHook(Hook):
    """Before every training epoch, ``set_epoch(runner.epoch, runner.max_epochs)`` on the
    mask generators of ``model.data_preprocessor`` (a ``MaskingDataPreprocessor``: its
    ``mask_generator`` and, with separate masks, its ``input_mask_generator``) and log the λ of
    the first one that has a λ as ``train/mask_lambda``.

    The generator runs in the main process, inside the data preprocessor, so the new epoch takes
    effect at once, however many (persistent) dataloader workers there are. λ changes per epoch,
    so the hook needs an epoch-based train loop.
    """

    def before_train(self, runner) -> None:
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            raise TypeError('SemMAELambdaHook updates λ per epoch, but the train loop is '
                            "iteration-based (one pseudo-epoch). Fix: train_cfg = dict(type="
                            "'EpochBasedTrainLoop', max_epochs=...).")

    def before_train_epoch(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        generators = getattr(model.data_preprocessor, 'generators', None)
        if not generators:
            raise TypeError(
                'SemMAELambdaHook sets the epoch of model.data_preprocessor.mask_generator, but '
                f'the data preprocessor is a {type(model.data_preprocessor).__name__} without '
                "one. Fix: data_preprocessor = dict(type='MaskingDataPreprocessor', "
                'preprocessor=dict(...), mask_generator=dict(...)), or drop the hook.')
        for generator in generators:
            generator.set_epoch(runner.epoch, runner.max_epochs)
        lams = [g.lam for g in generators if hasattr(g, 'lam')]
        if lams:
            runner.message_hub.update_scalar('train/mask_lambda', lams[0])
