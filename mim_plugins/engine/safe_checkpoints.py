"""Loading checkpoints without running code from them, and without widening torch's allowlist.

torch >= 2.6 loads with ``weights_only=True`` by default (mmengine 0.10 keeps that default): its
unpickler builds only tensors, plain containers and the globals on its allowlist. Importing
mim_plugins changes nothing about that. Two kinds of file need more than torch's default list:

- checkpoints that mmengine's runner writes: the message hub pickles ``HistoryBuffer`` objects,
  their statistic methods (as ``builtins.getattr(HistoryBuffer, 'min')``) and numpy arrays,
  dtypes and scalars. Our runs write theirs as tensors and plain data instead
  (``WeightsOnlyCheckpointHook``), so our files need no allowlist at all;
- such files written by stock mmengine (mmpretrain's, anyone's): :func:`stock_checkpoint_globals`
  allows them only while a loader of ours runs, and never the real functions: ``builtins.getattr``
  is a stand-in that returns nothing but a ``HistoryBuffer`` statistic method, numpy's
  ``_reconstruct`` / ``dtype`` / ``scalar`` stand-ins build plain numeric arrays only. The real
  ``getattr`` on the allowlist would let a pickle walk from an allowed function to ``exec``.

:func:`unsafe_globals` names what such a load refuses; :func:`read_checkpoint` is the load.
A file you trust that holds other objects is rewritten as tensors and plain data by
``tools/model_converters/resave_weights_only.py SRC DST`` (the one place that loads with
``weights_only=False``, and says so). What is and is not protected: docs/safety.md.
"""
import contextlib
import pickle
import re
import zipfile
from typing import Any, Callable, Dict, Iterator, List, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

_multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
# dtype kinds a checkpoint may hold: bool, signed / unsigned int, float, complex
_NUMERIC_KINDS = 'biufc'
# A name GLOBAL cannot spell (the unpickler reads module and name up to a newline): classes
# registered under it may be *built* (BUILD on an object a stand-in returned) but never fetched.
_UNREACHABLE = 'mim_plugins\nunreachable.'


class _NdarrayName:
    """What ``GLOBAL numpy.ndarray`` yields: a marker, neither callable nor a class."""

    def __repr__(self) -> str:
        return 'numpy.ndarray (as an argument of _reconstruct only)'


_NDARRAY = _NdarrayName()


def _refuse(what: str) -> None:
    raise pickle.UnpicklingError(f'Weights only load failed: {what}, which mmengine never '
                                 'pickles, was refused (it could run code)')


def history_statistic(obj: Any, name: Any) -> Callable:
    """Stand-in for ``builtins.getattr``: ``HistoryBuffer``'s statistic methods, nothing else."""
    if obj is not HistoryBuffer or name not in ('min', 'max', 'current', 'mean'):
        _refuse(f'builtins.getattr({obj!r}, {name!r})')
    return getattr(HistoryBuffer, name)


def numeric_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """Stand-in for ``numpy.dtype(str, False, True)``: plain numeric dtypes only."""
    if type(spec) is not str or align is not False or copy is not True:
        _refuse(f'numpy.dtype({spec!r}, {align!r}, {copy!r})')
    dtype = np.dtype(spec)
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields or dtype.subdtype:
        _refuse(f'numpy.dtype({spec!r}) (not a plain numeric dtype)')
    return dtype


def numeric_reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """Stand-in for numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty ndarray that the
    pickle then fills (numpy's ``__setstate__``) with a dtype of :func:`numeric_dtype`."""
    if subtype is not _NDARRAY or shape != (0,) or typecode != b'b':
        _refuse(f'numpy _reconstruct({subtype!r}, {shape!r}, {typecode!r})')
    return _multiarray._reconstruct(np.ndarray, (0,), b'b')


def numeric_scalar(dtype: Any, data: Any) -> np.generic:
    """Stand-in for numpy's ``scalar(dtype, bytes)``: numeric scalars only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS \
            or type(data) is not bytes:
        _refuse(f'numpy scalar({dtype!r}, {type(data).__name__})')
    return _multiarray.scalar(dtype, data)


def _stand_ins() -> List[Union[type, Tuple[Any, str]]]:
    found: List[Union[type, Tuple[Any, str]]] = [
        HistoryBuffer, (history_statistic, 'builtins.getattr'), (_NDARRAY, 'numpy.ndarray'),
        (numeric_dtype, 'numpy.dtype'), (np.ndarray, _UNREACHABLE + 'ndarray')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):  # numpy 2 / numpy 1
        found += [(numeric_reconstruct, f'{module}._reconstruct'),
                  (numeric_scalar, f'{module}.scalar')]
    for dtype in set(np.sctypeDict.values()):  # the dtype classes BUILD sets the byte order on
        if np.dtype(dtype).kind in _NUMERIC_KINDS:
            cls = type(np.dtype(dtype))
            found.append((cls, _UNREACHABLE + cls.__name__))
    return found


#: the global names a stock mmengine checkpoint needs beyond torch's default allowlist
STOCK_NAMES = frozenset(name for entry in _stand_ins() if isinstance(entry, tuple)
                        for name in [entry[1]] if not name.startswith(_UNREACHABLE)) | {
    f'{HistoryBuffer.__module__}.{HistoryBuffer.__qualname__}'}

_depth = 0


@contextlib.contextmanager
def stock_checkpoint_globals() -> Iterator[None]:
    """While inside, torch's weights-only loader also reads stock mmengine checkpoints, through
    the stand-ins above (re-entrant; torch's allowlist is as before on exit)."""
    global _depth
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    with torch.serialization.safe_globals(_stand_ins()):
        _depth = 1
        try:
            yield
        finally:
            _depth = 0


def check_numeric(obj: Any, where: str = 'checkpoint') -> None:
    """Raise ``UnpicklingError`` if a loaded object holds a numpy array or scalar that is not
    plain numeric (numpy's ``__setstate__`` could be handed another dtype than the stand-in
    built)."""
    if isinstance(obj, (np.ndarray, np.generic)):
        if obj.dtype.kind not in _NUMERIC_KINDS or obj.dtype.hasobject:
            _refuse(f'a numpy value of dtype {obj.dtype} at {where}')
    elif isinstance(obj, dict):
        for key, value in obj.items():
            check_numeric(value, f'{where}[{key!r}]')
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_numeric(value, f'{where}[{i}]')
    elif isinstance(obj, HistoryBuffer):
        check_numeric(vars(obj), where)


def read_checkpoint(path: str, map_location: Any = 'cpu') -> Any:
    """mmengine's ``_load_checkpoint`` (local files, URLs, ``open-mmlab://``), weights-only, with
    stock mmengine checkpoints allowed through :func:`stock_checkpoint_globals`."""
    from mmengine.runner.checkpoint import _load_checkpoint
    with stock_checkpoint_globals():
        checkpoint = _load_checkpoint(path, map_location=map_location)
    check_numeric(checkpoint)
    return checkpoint


def unsafe_globals(path: str) -> List[str]:
    """What in checkpoint ``path`` a weights-only load refuses, named (empty when it loads as
    :func:`read_checkpoint` reads it); raises what torch raises for a file it cannot read.

    A zip file (what ``torch.save`` writes) is first inspected without unpickling, against
    torch's allowlist; when it names nothing else than a stock mmengine checkpoint does (and
    always for a file in torch's legacy format), it is loaded weights-only (tensors
    memory-mapped) through the stand-ins, which refuse any other use of those names."""
    if zipfile.is_zipfile(path):
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        refused = [n for n in names if n not in STOCK_NAMES]
        if refused:
            return refused
    try:
        with stock_checkpoint_globals():
            loaded = torch.load(path, map_location='cpu', weights_only=True,
                                mmap=zipfile.is_zipfile(path))
        check_numeric(loaded)
    except pickle.UnpicklingError as exc:
        if 'Weights only load failed' not in str(exc):
            raise
        return [_refused_name(str(exc))]
    return []


def _refused_name(message: str) -> str:
    found = re.search(r'GLOBAL ([\w.]+)|but got <class \'([\w.]+)|failed: (.+?), which mmengine',
                      message)
    return next(g for g in found.groups() if g) if found else '(an object in a legacy file)'

