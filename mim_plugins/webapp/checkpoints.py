"""The checkpoints the demo offers: the main job's MAE first, the photo job's MAE next, then every
pretraining run found under ``work_dirs/`` whose model the demo can draw (``can_reconstruct``);
and, for part-guided masks, every SemMAE part learner trained there."""
import glob
import os.path as osp
from typing import Dict, Iterator, Optional, Tuple

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


def _model_cfg(config: str) -> Optional[dict]:
    """The model config of a config dump whose model type is a name, else None."""
    from mmengine.config import Config
    try:
        model_cfg = Config.fromfile(config).model
    except Exception:  # noqa: BLE001  (an unreadable dump is simply not offered)
        return None
    return model_cfg if isinstance(model_cfg.get('type'), str) else None


def _runs(work_dirs: str) -> Iterator[Tuple[str, str, str, dict]]:
    """(work dir, config dump, checkpoint, model config) of each work dir under ``work_dirs``
    with a ``last_checkpoint`` and exactly one readable config dump (tools/train.py writes
    both), sorted by path."""
    for pointer in sorted(glob.glob(osp.join(work_dirs, '**', 'last_checkpoint'), recursive=True)):
        work_dir = osp.dirname(pointer)
        checkpoint = _last_checkpoint(work_dir)
        configs = glob.glob(osp.join(work_dir, '*.py'))
        model_cfg = _model_cfg(configs[0]) if checkpoint and len(configs) == 1 else None
        if model_cfg is not None:
            yield work_dir, configs[0], checkpoint, model_cfg


def _reconstructs(model_cfg: dict) -> bool:
    try:
        return can_reconstruct(model_cfg)
    except Exception:  # noqa: BLE001  (a type no registry knows is simply not offered)
        return False


def find_checkpoints(work_dirs: str = osp.join(ROOT, 'work_dirs')) -> Dict[str, Tuple[str, str]]:
    """``{label: (config, checkpoint)}``: the main job's and the photo job's MAE (if trained),
    then each run of :func:`_runs` whose model has ``reconstruct`` (stock MAE / MaskFeat / BEiT
    as ours); labels are the work dir relative to ``work_dirs`` and the config's model type."""
    found: Dict[str, Tuple[str, str]] = {}
    jobs = ((DEMO_LABEL, DEMO_CONFIG, demo_checkpoint()),
            (PHOTO_LABEL, PHOTO_CONFIG, _last_checkpoint(PHOTO_WORK_DIR)))
    for label, config, checkpoint in jobs:
        if checkpoint:
            found[label] = (config, checkpoint)
    listed = {checkpoint for _, _, checkpoint in jobs}
    for work_dir, config, checkpoint, model_cfg in _runs(work_dirs):
        if checkpoint not in listed and _reconstructs(model_cfg):
            found[f'{osp.relpath(work_dir, work_dirs)} ({model_cfg.type})'] = (config, checkpoint)
    return found


def find_part_learners(work_dirs: str = osp.join(ROOT, 'work_dirs')
                       ) -> Dict[str, Tuple[str, str]]:
    """``{label: (config, checkpoint)}`` of each run of :func:`_runs` that trained a
    ``SemMAEPartLearner`` (docs/semmae_stage1.md: work_dirs/semmae_parts), labelled by its work
    dir relative to ``work_dirs`` and its number of parts."""
    found: Dict[str, Tuple[str, str]] = {}
    for work_dir, config, checkpoint, model_cfg in _runs(work_dirs):
        if model_cfg.type == 'SemMAEPartLearner':
            parts = model_cfg.get('num_parts', 7)
            found[f'{osp.relpath(work_dir, work_dirs)} ({parts} learned parts)'] = (config,
                                                                                 checkpoint)
    return found
