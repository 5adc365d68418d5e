"""Rewrite a checkpoint you trust so that torch's weights-only loader reads it.

    python tools/model_converters/resave_weights_only.py SRC.pth DST.pth

mim_plugins loads every checkpoint with ``weights_only=True`` (stock mmengine files through
restricted stand-ins: docs/safety.md), which refuses a file holding other Python objects (an
old checkpoint, one written by another codebase), since unpickling them can run any code. This
tool is the explicit way past that: it loads SRC with ``weights_only=False`` — do it only for a
file whose origin you trust — and writes DST with what a weights-only load accepts: tensors,
numbers, strings, None, and dicts / lists / tuples of them (numpy arrays and scalars become
tensors and numbers). Anything else (a custom class, mmengine's log history) is dropped, and
so are stored config texts (mmengine executes them when resuming); each dropped entry is
listed, never silently. DST is written to a temporary file, checked to load
weights-only, then renamed into place.
"""
import argparse
import os
import os.path as osp
from collections import OrderedDict
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from mim_plugins.apis import UserInputError, run_cli
from mim_plugins.apis.checks import check_not_source
from mim_plugins.engine import unsafe_globals

_DROPPED = object()
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def plain(value: Any, where: str, dropped: List[Tuple[str, str]]) -> Any:
    """``value`` with only weights-only data left; what cannot stay is appended to ``dropped``
    as (path, type name) and comes back as ``_DROPPED``."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, item in value.items():
            if not isinstance(key, _PLAIN):
                dropped.append((f'{where}[{key!r}]', f'key of type {type(key).__name__}'))
                continue
            kept = plain(item, f'{where}[{key!r}]', dropped)
            if kept is not _DROPPED:
                out[key] = kept
        return out
    if isinstance(value, (list, tuple)):
        items = [plain(item, f'{where}[{i}]', dropped) for i, item in enumerate(value)]
        items = [item for item in items if item is not _DROPPED]
        return type(value)(items) if type(value) in (list, tuple) else list(items)
    dropped.append((where, f'{type(value).__module__}.{type(value).__qualname__}'))
    return _DROPPED


def drop_config_text(checkpoint: Any) -> List[Tuple[str, str]]:
    """Remove the config texts mmengine stores (``meta['config']`` / ``meta['cfg']``, the message
    hub's ``runtime_info['cfg']``): ``Runner.resume`` and mmengine's inferencers execute them
    as Python. Returns them as dropped entries."""
    places = []
    if isinstance(checkpoint, dict):
        places.append(("checkpoint['meta']", checkpoint.get('meta')))
        hub = checkpoint.get('message_hub')
        if isinstance(hub, dict):
            places.append(("checkpoint['message_hub']['runtime_info']", hub.get('runtime_info')))
    dropped = []
    for where, node in places:
        for key in ('config', 'cfg'):
            if isinstance(node, dict) and key in node:
                del node[key]
                dropped.append((f'{where}[{key!r}]', 'config text (Python that mmengine executes)'))
    return dropped


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='checkpoint to rewrite (loaded with weights_only=False)')
    parser.add_argument('dst', help='where to write the weights-only checkpoint')
    args = parser.parse_args(argv)
    if not osp.isfile(args.src):
        raise UserInputError(f"Checkpoint '{args.src}' does not exist. Fix: pass the path of the "
                             '.pth file to rewrite.')
    check_not_source(args.src, args.dst)
    print(f"Loading '{args.src}' with weights_only=False: this runs any code the file holds. "
          'Only do it for a file you trust.', flush=True)
    try:
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
    except Exception as exc:  # noqa: BLE001  (any unreadable file gets the same answer)
        raise UserInputError(f"'{args.src}' cannot be read as a PyTorch checkpoint ({exc}). Fix: "
                             'pass a file written by torch.save (re-copy it if it is '
                             'truncated).') from None
    dropped: List[Tuple[str, str]] = []
    result = plain(checkpoint, 'checkpoint', dropped)
    if result is _DROPPED:
        raise UserInputError(f"'{args.src}' holds a single {dropped[0][1]} object, nothing a "
                             'weights-only file can keep. Fix: save its state_dict() instead.')
    dropped += drop_config_text(result)
    for where, kind in dropped:
        print(f'dropped {where}: {kind}')
    tmp = f'{args.dst}.tmp'
    torch.save(result, tmp)
    left = unsafe_globals(tmp)
    if left:  # plain() keeps only what torch accepts: this would be a bug here
        os.remove(tmp)
        raise RuntimeError(f'the rewritten file still holds {left}')
    os.replace(tmp, args.dst)
    print(f"Wrote '{args.dst}' ({len(dropped)} entr{'y' if len(dropped) == 1 else 'ies'} "
          'dropped); it loads with weights_only=True.')


if __name__ == '__main__':
    run_cli(main)
