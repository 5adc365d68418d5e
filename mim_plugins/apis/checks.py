"""Checks run on a config before anything is built, so bad paths fail at once and clearly."""
import os.path as osp
from typing import Iterator, Tuple

from mmengine.config import Config

from .errors import RESAVE, UserInputError

DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# Data sets that download or generate their own files: nothing to check on disk.
_NO_FILES = {'MNIST', 'FashionMNIST', 'CIFAR10', 'CIFAR100'}


def _datasets(cfg: dict, key: str) -> Iterator[Tuple[str, dict]]:
    """(config key, dataset dict) pairs, descending into dataset wrappers."""
    if not isinstance(cfg, dict):
        return
    inner = [(f'{key}.dataset', cfg['dataset'])] if isinstance(cfg.get('dataset'), dict) else []
    for i, sub in enumerate(cfg.get('datasets') or []):
        inner.append((f'{key}.datasets[{i}]', sub))
    if inner:
        for sub_key, sub in inner:
            yield from _datasets(sub, sub_key)
    else:
        yield key, cfg


def _prefix_paths(prefix) -> Iterator[Tuple[str, str]]:
    if isinstance(prefix, str):
        yield 'data_prefix', prefix
    elif isinstance(prefix, dict):
        for k, v in prefix.items():
            if isinstance(v, str):
                yield f'data_prefix.{k}', v


def _pretrained(node, key: str) -> Iterator[Tuple[str, str]]:
    """(config key, checkpoint) of every ``init_cfg=dict(type='Pretrained', ...)`` under ``node``."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            yield f'{key}.init_cfg.checkpoint', init.get('checkpoint') or ''
        for name, value in node.items():
            if name != 'init_cfg':
                yield from _pretrained(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained(value, f'{key}[{i}]')


def check_checkpoints(cfg: Config) -> None:
    """Raise ``UserInputError`` naming the config key when a local checkpoint that an
    ``init_cfg`` of the model loads (a pretrained encoder, BEiT's DALL-E tokenizer) is missing."""
    for key, path in _pretrained(cfg.get('model'), 'model'):
        if '://' in path:
            continue  # a URL: mmengine reports a failed download itself
        if not path or not osp.isfile(path):
            raise UserInputError(
                f"The checkpoint '{path}' set by `{key}` does not exist. Fix: put the file there "
                f'(the config\'s README says which), or --cfg-options {key}=/real/path.pth.')
        check_weights_only(path, f"The checkpoint '{path}' set by `{key}`")


def check_weights_only(path: str, what: str) -> None:
    """Raise ``UserInputError`` when the file at ``path`` holds Python objects that torch's
    weights-only loader refuses (``mim_plugins.engine.safe_checkpoints``), naming them."""
    from ..engine import unsafe_globals
    try:
        found = unsafe_globals(path)
    except Exception as exc:  # noqa: BLE001  (a truncated or foreign file)
        raise UserInputError(f"{what} cannot be read as a PyTorch checkpoint ({exc}). Fix: pass a "
                             '.pth file written by torch.save (re-copy it if it is truncated).') \
            from None
    if found:
        raise UserInputError(
            f'{what} holds Python objects that the weights-only loader refuses to unpickle (they '
            f"could run code): {', '.join(found[:4])}. Fix: if you trust the file, rewrite it as "
            f'tensors with `python {RESAVE} {path} NEW.pth` and pass NEW.pth.')


def check_data_paths(cfg: Config, phases: Tuple[str, ...] = DATALOADERS) -> None:
    """Raise ``UserInputError`` naming the config key and the fix when a data root, annotation
    file or image folder of the given dataloaders does not exist; when training, also when a
    checkpoint the model's ``init_cfg`` loads is missing (:func:`check_checkpoints`)."""
    if 'train_dataloader' in phases:
        check_checkpoints(cfg)
    for phase in phases:
        loader = cfg.get(phase)
        if not loader:
            continue
        for key, ds in _datasets(loader.get('dataset'), f'{phase}.dataset'):
            if str(ds.get('type', '')).split('.')[-1] in _NO_FILES:
                continue
            root = ds.get('data_root') or ''
            if root and not osp.isdir(root):
                _missing(f'{key}.data_root', root, 'data root')
            ann = ds.get('ann_file') or ''
            if ann and not osp.isfile(osp.join(root, ann)):
                _missing(f'{key}.ann_file', osp.join(root, ann), 'annotation file')
            for sub_key, prefix in _prefix_paths(ds.get('data_prefix')):
                path = osp.join(root, prefix)
                if prefix and not ann and not osp.exists(path):
                    _missing(f'{key}.{sub_key}', path, 'image folder')


def _missing(key: str, path: str, what: str) -> None:
    raise UserInputError(
        f"The {what} '{path}' set by `{key}` does not exist. Fix: prepare the data set there "
        f"(README.md, 'Data sets'), or point the config at it with --cfg-options {key}=/real/path.")


def check_not_source(src: str, dst: str) -> None:
    """Raise ``UserInputError`` when writing ``dst`` would overwrite ``src``: the same path, or
    another name of the same file (a symlink, a hard link)."""
    same = osp.realpath(src) == osp.realpath(dst) or (
        osp.exists(src) and osp.exists(dst) and osp.samefile(src, dst))
    if same:
        raise UserInputError(f"DST '{dst}' is the input file SRC '{src}': writing it would "
                             'destroy the input. Fix: give DST another path.')
