"""Local checkpoint loading for torch >= 2.6 with mmengine 0.10.

torch 2.6 made ``torch.load(weights_only=True)`` the default, and mmengine 0.10's local loader
does not pass the argument, so every checkpoint mmengine itself wrote (its message hub holds
``HistoryBuffer`` and numpy objects) fails to load for fine-tuning, testing and ``--resume``.
We restore mmengine's pre-2.6 behaviour for local files: checkpoints are files you trained or
converted yourself, loaded with the trust mmengine always gave them.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from ..utils.errors import MissingFileError


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location=None) -> dict:
    """Load a local checkpoint file (any pickled content mmengine writes)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise MissingFileError(
            f"Checkpoint '{filename}' does not exist. Fix: pass the path of an existing .pth file "
            '(to fine-tune or probe: --cfg-options model.backbone.init_cfg.checkpoint=PATH).')
    return torch.load(filename, map_location=map_location, weights_only=False)
