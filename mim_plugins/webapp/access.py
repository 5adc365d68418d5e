"""What the web demo may open and who may reach it (docs/web_demo.md, "Security").

Loading a config runs it (``Config.fromfile`` executes Python) and loading a checkpoint
unpickles it, so the demo opens a path typed in the page only when it lies, after resolving
``..`` and symlinks, inside a folder the person who started the server allowed (by default
the repository's ``work_dirs/``, ``configs/`` and ``data/``), and never inside the folder that
holds uploads. Every refusal reads the same, whether the file exists or not, so the page
cannot be used to probe the server's files.
"""
import ipaddress
import os
import os.path as osp
from typing import Optional, Sequence

from ..utils.errors import UserInputError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_ROOTS = tuple(osp.join(ROOT, name) for name in ('work_dirs', 'configs', 'data'))
PASSWORD_ENV = 'MIM_DEMO_PASSWORD'
USER = 'demo'


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(osp.sep) + osp.sep)


def allowed_path(path: str, roots: Sequence[str], blocked: Sequence[str] = (),
                 what: str = 'file') -> str:
    """The resolved ``path`` when it lies inside one of ``roots`` and none of ``blocked``
    (both resolved too), else one ``UserInputError`` that says nothing about the file itself.

    A path with a ``..`` component is refused before resolving, and a symlink that points out
    of the roots resolves to where it points, so neither escapes. Relative paths are relative
    to the repository. Existence is the caller's check: inside the roots it reveals nothing.
    """
    denied = UserInputError(
        f'The demo does not open that {what}: it opens only files inside the folders the server '
        f'allows ({", ".join(_shown(r) for r in roots)}). Fix: give the path of a {what} '
        'there, e.g. work_dirs/<run>/epoch_N.pth; uploaded files are never loaded as a '
        'config or checkpoint.')
    if not path or '\0' in path or '..' in path.replace('\\', '/').split('/'):
        raise denied
    resolved = osp.realpath(path if osp.isabs(path) else osp.join(ROOT, path))
    if not any(_inside(resolved, osp.realpath(r)) for r in roots) or \
            any(_inside(resolved, osp.realpath(b)) for b in blocked):
        raise denied
    return resolved


def _shown(folder: str) -> str:
    """A root as the page names it: relative to the repository when inside it."""
    return osp.relpath(folder, ROOT) + '/' if _inside(folder, ROOT) else folder


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine reaches (127.x, ::1, localhost)."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def read_password(password_file: Optional[str]) -> Optional[str]:
    """The demo's password: the first line of ``password_file``, else ``$MIM_DEMO_PASSWORD``,
    else None. An empty password is refused."""
    if password_file:
        if not osp.isfile(password_file):
            raise UserInputError(f"Password file '{password_file}' does not exist. Fix: write "
                                 'the password on its first line.')
        with open(password_file) as f:
            password = f.readline().strip()
    else:
        password = os.environ.get(PASSWORD_ENV, '').strip() or None
        if password is None:
            return None
    if not password:
        raise UserInputError(f"Password file '{password_file}' is empty. Fix: write the "
                             'password on its first line.')
    return password


def check_exposure(host: str, remote: bool, password: Optional[str]) -> None:
    """Serving beyond this machine needs ``--remote`` and a password, since anyone who reaches
    the page makes the server read images and run models."""
    if is_loopback(host):
        return
    if not remote:
        raise UserInputError(
            f'--host {host} would serve the demo beyond this machine. Fix: keep the default '
            '(127.0.0.1, this machine only), or add --remote and a password '
            f'(--password-file FILE or ${PASSWORD_ENV}).')
    if password is None:
        raise UserInputError(
            f'--remote on {host} needs a password, so that only people who know it use the '
            f'demo. Fix: pass --password-file FILE (password on its first line) or set '
            f'${PASSWORD_ENV}; log in as user "{USER}".')
