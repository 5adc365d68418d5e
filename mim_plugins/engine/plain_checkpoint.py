"""Checkpoint contents as tensors and plain data, so that torch's default weights-only loader
reads our files with no allowlist, and back.

mmengine's runner pickles its message hub as it is: ``HistoryBuffer`` objects (whose statistic
methods pickle as ``builtins.getattr``) and numpy arrays and scalars (the random-generator
states of ``AtomicCheckpointHook`` too). :func:`to_plain` replaces each by a small tagged dict
of tensors, numbers and strings; :func:`from_plain` rebuilds the same objects.
"""
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

TAG = '__mim_plugins_plain__'


def _array(value: np.ndarray) -> dict:
    try:  # a tensor for the dtypes torch has, the same bytes and far smaller than a list
        data: Any = torch.from_numpy(np.ascontiguousarray(value)).clone()
    except TypeError:
        data = value.tolist()
    return {TAG: 'ndarray', 'dtype': value.dtype.str, 'shape': list(value.shape), 'data': data}


def to_plain(obj: Any) -> Any:
    """``obj`` with every ``HistoryBuffer`` and numeric numpy array / scalar replaced by a tagged
    dict; containers are copied, tensors and other objects kept as they are."""
    if isinstance(obj, HistoryBuffer):
        return {TAG: 'HistoryBuffer', 'max_length': obj.max_length,
                'log_history': _array(obj._log_history),
                'count_history': _array(obj._count_history)}
    if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
        return _array(obj)
    if isinstance(obj, np.generic) and not obj.dtype.hasobject:
        return {TAG: 'numpy_scalar', 'dtype': obj.dtype.str, 'value': obj.item()}
    if type(obj) in (dict, OrderedDict):
        return _same_kind(obj, ((k, to_plain(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        return type(obj)(to_plain(v) for v in obj)
    return obj


def from_plain(obj: Any) -> Any:
    """The inverse of :func:`to_plain`; data without tags comes back unchanged."""
    if type(obj) in (dict, OrderedDict):
        kind = obj.get(TAG)
        if kind == 'ndarray':
            data = obj['data']
            data = data.numpy() if isinstance(data, torch.Tensor) else data
            return np.asarray(data, dtype=_numeric(obj['dtype'])).reshape(obj['shape'])
        if kind == 'numpy_scalar':
            return _numeric(obj['dtype']).type(obj['value'])
        if kind == 'HistoryBuffer':
            return HistoryBuffer(from_plain(obj['log_history']),
                                 from_plain(obj['count_history']), obj['max_length'])
        return _same_kind(obj, ((k, from_plain(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        return type(obj)(from_plain(v) for v in obj)
    return obj


def _numeric(spec: str) -> np.dtype:
    dtype = np.dtype(str(spec))
    if dtype.kind not in 'biufc' or dtype.fields or dtype.subdtype:
        raise ValueError(f'a tagged numpy value of dtype {spec!r} in the checkpoint: only plain '
                         'numeric dtypes are written by WeightsOnlyCheckpointHook')
    return dtype


def _same_kind(obj: dict, items) -> dict:
    """A dict of ``obj``'s type with ``items``, keeping an OrderedDict's attributes (a state
    dict's ``_metadata``: the module versions its load hooks read)."""
    out = type(obj)(items)
    if isinstance(obj, OrderedDict):
        vars(out).update(vars(obj))
    return out
