"""Checks that the installed OpenMMLab stack can run mim_plugins, with the fix when it cannot.

Two install profiles (docs/install.md): ``lite``, the default (mmcv-lite and
onedl-mmsegmentation, the maintained mmsegmentation fork: pure Python, nothing compiled), runs
everything, segmentation included; ``compiled`` (opt-in: mmcv compiled with its ops and upstream
mmsegmentation 1.2.2) runs the same. ``check_stack`` asks for what mim_plugins needs without
segmentation; ``seg_missing`` tells whether segmentation can run (either mmseg distribution, with
or without mmcv's ops), and ``require_seg`` stops a segmentation feature where it cannot.
"""
import importlib
import os.path as osp
import sys
import warnings
from importlib import metadata
from typing import Optional

from .errors import UserInputError

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class StackError(ImportError):
    """The installed packages cannot run mim_plugins."""


def installed_profile() -> Optional[str]:
    """'compiled' when the compiled mmcv distribution is installed, 'lite' for mmcv-lite, else
    None (both provide the same ``mmcv`` package)."""
    for dist, profile in (('mmcv', 'compiled'), ('mmcv-lite', 'lite')):
        try:
            metadata.version(dist)
            return profile
        except metadata.PackageNotFoundError:
            pass
    return None


def setup_command(profile: str) -> str:
    """The command that installs ``profile`` into the running environment."""
    in_venv = sys.prefix != sys.base_prefix
    default = osp.realpath(osp.join(_ROOT, '.venv'))
    env = f'VENV={sys.prefix} ' if in_venv and osp.realpath(sys.prefix) != default else ''
    make = 'make setup' if profile == 'lite' else f'make setup PROFILE={profile}'
    return f'`{env}{make}` (= `{env}PROFILE={profile} bash tools/setup_env.sh`)'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return '(unknown version)'


def check_stack() -> None:
    """Raise ``StackError`` with a one-line message (problem, then the command that fixes it)
    when a package mim_plugins needs on either profile is missing, when torchvision does not
    load with the installed torch, or when mmpretrain rejects the installed mmcv/mmengine."""
    cmd = setup_command(installed_profile() or 'lite')
    for name in ('torch', 'torchvision', 'mmengine', 'mmcv'):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise StackError(f'mim_plugins needs `{name}`, which does not import '
                             f'({_first_line(exc)}). Fix: run {cmd}.') from None
        except RuntimeError as exc:  # a torchvision built for another torch
            if name != 'torchvision':
                raise
            import torch
            raise StackError(
                f'torchvision {_version(name)} does not load with torch {torch.__version__} '
                f'({_first_line(exc)}): the two were not built for each other. Fix: run {cmd}, '
                'which installs the pair pinned in requirements/torch.txt.') from None
    try:
        with warnings.catch_warnings():
            # mmcv-lite (the lite profile) lacks this op by design; mmpretrain never uses it.
            warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformableAttention``')
            importlib.import_module('mmpretrain')
            importlib.import_module('mmpretrain.models')
    except AssertionError as exc:  # mmpretrain asserts its mmcv and mmengine ranges at import
        raise StackError(f'mmpretrain {_version("mmpretrain")} rejects the installed stack '
                         f'({_first_line(exc)}). Fix: run {cmd}, which installs mmcv 2.1.0 and '
                         'mmengine 0.10.7.') from None
    except ImportError as exc:
        raise StackError(f'mim_plugins needs `mmpretrain`, which does not import '
                         f'({_first_line(exc)}). Fix: run {cmd}.') from None


def seg_missing() -> Optional[str]:
    """What segmentation lacks here (a short phrase for an error message), or None when
    ``mmseg.models`` imports: onedl-mmsegmentation (the lite profile) on mmcv-lite or mmcv, or
    upstream mmsegmentation on a compiled mmcv (it imports ``mmcv.ops`` unconditionally). Decides
    whether the segmentation modules register."""
    try:
        with warnings.catch_warnings():
            # mmcv-lite lacks this op by design; no segmentor mim_plugins builds uses it.
            warnings.filterwarnings('ignore', 'Fail to import ``MultiScaleDeformableAttention``')
            importlib.import_module('mmseg.models')
    except ImportError as exc:
        return ('an mmsegmentation that imports here (`import mmseg.models` fails: '
                f'{_first_line(exc)})')
    except AssertionError as exc:  # mmseg asserts its mmcv range at import
        return f'an mmsegmentation that accepts the installed mmcv ({_first_line(exc)})'
    return None


def require_seg(what: str) -> None:
    """Raise ``UserInputError`` (one line: what needs segmentation, what is missing, the command
    that installs it) unless segmentation can run here."""
    missing = seg_missing()
    if missing is not None:
        raise UserInputError(f'{what} needs segmentation, and this environment lacks {missing}. '
                             f'Fix: run {setup_command("lite")}, which installs it without a '
                             'compiler; see docs/install.md.')
