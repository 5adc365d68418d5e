"""One clear error for the bad inputs users hit most, instead of a traceback.

``explain(exc)`` turns a known failure into a message naming the problem and the fix;
``run_cli`` prints it and exits with status 2. Set ``MIM_PLUGINS_DEBUG=1`` to see the traceback.
"""
import difflib
import errno
import inspect
import os
import re
import sys
from typing import Callable, Iterable, List, Optional

from mmengine.registry import Registry

from ..utils.errors import UserInputError


_UNKNOWN_TYPE = re.compile(r'([\w.]+) is not in the (\w+)::([\w ]+?) registry')
_BAD_IMAGE = re.compile(r'failed to load image: (\S+)')
# mmpretrain's CustomDataset on a folder without images; data_prefix may be a dict's repr
_NO_IMAGES = re.compile(r"Found 0 files in subfolders of: (?:\{'img_path': )?'?(.+?)'?\}?\. "
                        r'Supported extensions are: (\S+)')
_UNKNOWN_ARG = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
_MISSING_CHECKPOINT = re.compile(r'^(.+) can not be found\.$')  # mmengine's local loader
_UNSAFE_GLOBAL = re.compile(r'(?:Unsupported global: GLOBAL|but got <class) \'?([\w.]+)')
RESAVE = 'tools/model_converters/resave_weights_only.py'


def _registry_names(scope: str, name: str) -> Iterable[str]:
    """Every type name visible from registry ``name`` of ``scope`` (its own and its parents')."""
    seen = set()
    for mod in ('mmpretrain.registry', 'mmseg.registry', 'mmengine.registry'):
        try:
            module = __import__(mod, fromlist=['*'])
        except ImportError:
            continue
        for reg in vars(module).values():
            if isinstance(reg, Registry) and reg.name == name:
                while reg is not None:
                    seen.update(reg.module_dict)
                    reg = reg.parent
    return seen


def _init_args(class_name: str) -> List[str]:
    """Constructor arguments of the class of that name: a registered one, or torch's
    ``DataLoader`` (what the ``*_dataloader`` keys build)."""
    from torch.utils.data import DataLoader
    found = [DataLoader] if class_name == 'DataLoader' else []
    for mod in ('mmpretrain.registry', 'mmseg.registry', 'mmengine.registry'):
        try:
            module = __import__(mod, fromlist=['*'])
        except ImportError:
            continue
        found += [reg.module_dict[class_name] for reg in vars(module).values()
                  if isinstance(reg, Registry) and class_name in reg.module_dict]
    if not found:
        return []
    return [p for p in inspect.signature(found[0].__init__).parameters if p != 'self']


def _unknown_arg(class_name: str, key: str) -> str:
    close = difflib.get_close_matches(key, _init_args(class_name), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
    return (f"Unknown config key '{key}' for {class_name}: {class_name} takes no argument of "
            f"that name.{hint} Fix: correct or remove `{key}` in the config (or in "
            '--cfg-options); the accepted keys are the arguments in its docstring.')


def explain(exc: BaseException) -> Optional[str]:
    """A one-paragraph explanation with the fix for a known failure, else None."""
    text = str(exc)
    if isinstance(exc, UserInputError):
        # Raised in a dataloader worker, it comes back as "Caught X in DataLoader worker ...
        # Original Traceback ...": the message is the traceback's last line.
        return text.strip().splitlines()[-1].split(': ', 1)[-1] if 'Original Traceback' in text \
            else text
    match = _UNKNOWN_TYPE.search(text)
    if isinstance(exc, KeyError) and match:
        type_name, scope, reg_name = match.groups()
        short = type_name.split('.')[-1]
        close = difflib.get_close_matches(short, _registry_names(scope, reg_name), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ''
        return (f"Unknown type '{type_name}' in the config: nothing by that name is registered in "
                f"the {scope} {reg_name} registry.{hint} Fix: correct the spelling, or, for a "
                "mim_plugins module, make sure the config has "
                "custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False).")
    match = _UNKNOWN_ARG.search(text)
    if isinstance(exc, TypeError) and match:
        return _unknown_arg(*match.groups())
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing '{exc.filename}'" if exc.filename else ''
        return (f'No space left on the device{where}. Fix: free disk space, or write the run '
                'elsewhere with --work-dir, then continue with --resume.')
    match = _MISSING_CHECKPOINT.match(text)
    if isinstance(exc, FileNotFoundError) and match:
        return (f"Checkpoint '{match.group(1)}' does not exist. Fix: pass the path of an existing "
                '.pth file (to fine-tune or probe: --cfg-options '
                'model.backbone.init_cfg.checkpoint=PATH).')
    if type(exc).__name__ == 'UnpicklingError' and 'Weights only load failed' in text:
        match = _UNSAFE_GLOBAL.search(text)
        what = f' ({match.group(1)})' if match else ''
        return (f'A checkpoint holds a Python object{what} that the weights-only loader refuses '
                'to unpickle (it could run code). Fix: if you trust the file, rewrite it as '
                f'tensors with `python {RESAVE} SRC DST` and load DST.')
    match = _NO_IMAGES.search(text)
    if match:
        return (f"No images in the data folder '{match.group(1)}' (nor in its subfolders; "
                f'image extensions: {match.group(2)}). Fix: point '
                'train_dataloader.dataset.data_root / data_prefix at the folder that holds '
                'the images (with --cfg-options), or put the images there.')
    match = _BAD_IMAGE.search(text)
    if match:
        return (f'Corrupt or unreadable image {match.group(1)}: it could not be decoded. '
                'Fix: replace the file with a valid image, or delete it (and its line in the '
                'annotation file, if the data set has one).')
    return None


def run_cli(main: Callable[[], None]) -> None:
    """Run ``main``; a known failure ends with one clear message and exit status 2."""
    try:
        main()
    except Exception as exc:  # noqa: BLE001  (re-raised unless we can explain it)
        message = explain(exc)
        if message is None or os.environ.get('MIM_PLUGINS_DEBUG') == '1':
            raise
        print(f'ERROR: {message}', file=sys.stderr, flush=True)
        sys.exit(2)
