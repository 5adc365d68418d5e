"""Checkpoints load with torch's weights-only unpickler, which runs no code from the file.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10's loader keeps that
default; but every checkpoint mmengine writes holds its message hub: ``HistoryBuffer`` objects
(whose statistic methods pickle as ``getattr(HistoryBuffer, 'min')``) and numpy arrays, dtypes
and scalars. Importing mim_plugins adds exactly those classes to torch's weights-only allowlist
(:func:`allow_mmengine_checkpoints`), so fine-tuning, testing and ``--resume`` read mmengine's
own files, also through OpenMMLab's tools (``mim train/test``). Nothing else changes: mmengine's
loader is untouched, and a file holding any other Python object is refused.

``getattr`` on the allowlist cannot run code: torch's unpickler calls only allowlisted callables,
so what ``getattr`` returns can be stored but never called.

A file you trust that holds other objects (an old checkpoint, another codebase's) is rewritten
as tensors and plain data by ``tools/model_converters/resave_weights_only.py SRC DST``, the one
place that loads with ``weights_only=False``, and says so. :func:`unsafe_globals` tells which
objects a file holds that the allowlist refuses (the configs' checkpoints are checked with it
before anything is built, ``mim_plugins.apis.checks``).
"""
import pickle
import re
import zipfile
from typing import List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def mmengine_checkpoint_globals() -> list:
    """The non-tensor classes and functions in a checkpoint written by mmengine's runner."""
    multiarray = np.core.multiarray if not hasattr(np, '_core') else np._core.multiarray
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')]
    found = [HistoryBuffer, getattr, np.ndarray, np.dtype, multiarray._reconstruct,
             multiarray.scalar] + dtypes
    # numpy 1 wrote the same functions under numpy.core: checkpoints from such an environment
    for name in ('_reconstruct', 'scalar'):
        found.append((getattr(multiarray, name), f'numpy.core.multiarray.{name}'))
    return found


def allow_mmengine_checkpoints() -> None:
    """Add :func:`mmengine_checkpoint_globals` to torch's weights-only allowlist (idempotent)."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def unsafe_globals(path: str) -> List[str]:
    """The names of the objects in checkpoint ``path`` that a weights-only load refuses (empty
    when it loads); raises what torch raises for a file it cannot read at all. A zip file (what
    ``torch.save`` writes) is inspected without unpickling; a file in torch's legacy format is
    loaded weights-only to find out."""
    if zipfile.is_zipfile(path):
        # (torch leaves out what its own and the user-added allowlist accept)
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        if 'Weights only load failed' not in str(exc):
            raise
        found = re.search(r'GLOBAL ([\w.]+)|but got <class \'([\w.]+)', str(exc))
        return [next(g for g in found.groups() if g) if found else '(an object in a legacy file)']
    return []
