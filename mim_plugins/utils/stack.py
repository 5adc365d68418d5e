"""Checks that the installed OpenMMLab stack can run mim_plugins, with the fix when it cannot."""
import importlib

SETUP_HINT = 'Fix: run `bash tools/setup_env.sh` (FORCE=1 to rebuild), see README.md "Install".'


class StackError(ImportError):
    """The installed packages cannot run mim_plugins."""


def check_stack() -> None:
    """Raise ``StackError`` naming the broken package when mmcv has no compiled ops or a package
    is missing. mmsegmentation imports ``mmcv.ops`` unconditionally, so mmcv-lite breaks it."""
    for name in ('torch', 'mmengine', 'mmcv', 'mmpretrain'):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise StackError(f'mim_plugins needs `{name}`, which does not import ({exc}). '
                             f'{SETUP_HINT}') from exc
    try:
        importlib.import_module('mmcv.ops')
    except ImportError as exc:
        raise StackError('mmcv is installed without its compiled ops (mmcv-lite, or a build with '
                         f'MMCV_WITH_OPS=0): `import mmcv.ops` fails ({exc}), and mmsegmentation '
                         f'needs it. {SETUP_HINT}') from exc
