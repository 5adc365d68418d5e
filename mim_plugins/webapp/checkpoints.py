"""The checkpoints the demo offers: the main job's MAE first, the photo job's MAE next, then every
pretraining run found under ``work_dirs/`` whose model the demo can draw (``can_reconstruct``)."""
import glob
import os.path as osp
from typing import Dict, Optional, Tuple

from ..visualization.loading import can_reconstruct

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The main job's pretraining (tools/demo_stages.py: PRETRAIN into work_dirs/demo/mae_pretrain).
DEMO_CONFIG = osp.join(ROOT, 'configs', 'mae', 'mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
DEMO_WORK_DIR = osp.join(ROOT, 'work_dirs', 'demo', 'mae_pretrain')
DEMO_LABEL = 'main job: MAE, ViT-tiny p4, MNIST-5k (make demo)'
# The photo job's pretraining (tools/run_photo_demo.py: into work_dirs/demo_photos/mae_pretrain).
PHOTO_CONFIG = osp.join(ROOT, 'configs', 'mae',
                        'mae_vit-tiny-p16_1xb64-coslr-40e_groceries-64px.py')
PHOTO_WORK_DIR = osp.join(ROOT, 'work_dirs', 'demo_photos', 'mae_pretrain')
PHOTO_LABEL = 'photo job: MAE, ViT-tiny p16, GroceryStore 64x64 (make demo-photos)'
NO_DEMO = ("The main job's MAE checkpoint is not there yet ({path}). Fix: run `make demo` "
           '(about 10 minutes on 2 CPU cores), or enter a config and a checkpoint under '
           '"Other checkpoint".')


def _last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint a work dir's ``last_checkpoint`` file names, if it exists."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    path = path if osp.isabs(path) else osp.join(ROOT, path)
    return path if osp.isfile(path) else None


def demo_checkpoint() -> Optional[str]:
    """The main job's MAE checkpoint, or None when ``make demo`` has not run."""
    return _last_checkpoint(DEMO_WORK_DIR)


def _shown_type(config: str) -> Optional[str]:
    """The model type of ``config`` when the demo can draw its model, else None."""
    from mmengine.config import Config
    try:
        model_cfg = Config.fromfile(config).model
        model_type = model_cfg.type
        shown = isinstance(model_type, str) and can_reconstruct(model_cfg)
    except Exception:  # noqa: BLE001  (an unreadable dump is simply not offered)
        return None
    return model_type if shown else None


def find_checkpoints(work_dirs: str = osp.join(ROOT, 'work_dirs')) -> Dict[str, Tuple[str, str]]:
    """``{label: (config, checkpoint)}``: the main job's and the photo job's MAE (if trained),
    then each work dir
    with a ``last_checkpoint`` and exactly one config dump (tools/train.py writes both) whose
    model has ``reconstruct`` (stock MAE / MaskFeat / BEiT as ours); labels are the work dir
    relative to ``work_dirs`` and the config's model type."""
    found: Dict[str, Tuple[str, str]] = {}
    jobs = ((DEMO_LABEL, DEMO_CONFIG, demo_checkpoint()),
            (PHOTO_LABEL, PHOTO_CONFIG, _last_checkpoint(PHOTO_WORK_DIR)))
    for label, config, checkpoint in jobs:
        if checkpoint:
            found[label] = (config, checkpoint)
    listed = {checkpoint for _, _, checkpoint in jobs}
    for pointer in sorted(glob.glob(osp.join(work_dirs, '**', 'last_checkpoint'), recursive=True)):
        work_dir = osp.dirname(pointer)
        checkpoint = _last_checkpoint(work_dir)
        configs = glob.glob(osp.join(work_dir, '*.py'))
        if checkpoint is None or len(configs) != 1 or checkpoint in listed:
            continue
        model_type = _shown_type(configs[0])
        if model_type is not None:
            found[f'{osp.relpath(work_dir, work_dirs)} ({model_type})'] = (configs[0], checkpoint)
    return found
