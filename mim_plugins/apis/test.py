"""``tools/test.py``: evaluate a checkpoint with any mmpretrain or mmseg config."""
import argparse
import copy
import os.path as osp
from typing import Dict, List, Optional

import mmengine
from mmengine.config import Config, ConfigDict
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .checks import check_data_paths
from .common import add_common_args, checkpoint_arg, load_config, setup_launcher
from .errors import UserInputError


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a mim_plugins / mmpretrain / mmseg model')
    add_common_args(parser)
    parser.add_argument('checkpoint', help='checkpoint file written by tools/train.py')
    parser.add_argument('--out', help='write the metrics to this JSON/YAML/pickle file')
    parser.add_argument('--show-dir', help='save drawn predictions under WORK_DIR/SHOW_DIR')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: the config\'s tta_pipeline/tta_model '
                        '(mmseg: multi-scale + flip), or horizontal-flip averaging (mmpretrain)')
    parser.add_argument('--amp', action='store_true', help='fp16 inference (GPU)')
    parser.add_argument('--allow-missing-weights', action='store_true',
                        help='evaluate even when the checkpoint leaves tensors of the model '
                        'uninitialised (default: refuse, naming the counts)')
    return parser.parse_args(argv)


#: the extensions mmengine.dump writes, by format
OUT_FORMATS = ('.json', '.yaml', '.yml', '.pkl', '.pickle')


def check_out(path: str) -> None:
    """Refuse an ``--out`` file mmengine cannot write before the evaluation, not after it."""
    if osp.splitext(path)[1].lower() not in OUT_FORMATS:
        raise UserInputError(f"--out '{path}': the metrics are written as JSON, YAML or pickle, "
                             'chosen by the extension. Fix: --out metrics.json (or .yaml, .pkl).')
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        raise UserInputError(f"--out '{path}': the folder '{folder}' does not exist. Fix: create "
                             'it, or write the metrics elsewhere.')


def _flip_tta(cfg: Config) -> None:
    """Classification TTA: average the scores of the image and its horizontal flip."""
    pipeline = cfg.test_dataloader.dataset.pipeline
    cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
    if 'tta_pipeline' not in cfg:
        flips = [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)]
        cfg.tta_pipeline = copy.deepcopy(pipeline[:-1]) + [
            dict(type='TestTimeAug', transforms=[flips, [pipeline[-1]]])]


def set_tta(cfg: Config) -> None:
    if cfg.default_scope == 'mmpretrain':
        _flip_tta(cfg)
    elif 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise UserInputError('--tta needs `tta_model` and `tta_pipeline` in the config (mmseg\'s '
                             'dataset and runtime bases define them). Fix: inherit them or drop --tta.')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def build_runner(args: argparse.Namespace) -> Runner:
    if args.out:
        check_out(args.out)
    cfg = load_config(args)
    cfg.load_from = checkpoint_arg(args.checkpoint, 'The')
    if args.amp:
        cfg.setdefault('test_cfg', {})['fp16'] = True
    if args.show_dir:
        vis = cfg.default_hooks.get('visualization')
        if vis is None:
            raise UserInputError('--show-dir needs default_hooks.visualization in the config.')
        vis.update(enable=True, out_dir=args.show_dir)
        if cfg.default_scope == 'mmseg':
            vis.draw = True  # mmseg's hook draws only when asked
    if args.tta:
        set_tta(cfg)
    check_data_paths(cfg, ('test_dataloader',))
    if args.allow_missing_weights:
        cfg.custom_hooks = [h for h in cfg.get('custom_hooks') or []
                            if h.get('type') != 'RequireLoadedWeightsHook']
    setup_launcher(cfg)
    # as OpenMMLab's own tools/test.py (mim test): the config names its runner
    return RUNNERS.build(cfg) if cfg.get('runner_type') else Runner.from_cfg(cfg)


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    metrics = build_runner(args).test()
    if args.out:
        mmengine.dump(metrics, args.out)
    return metrics
