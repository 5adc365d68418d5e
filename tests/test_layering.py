"""The layering a reader can see: the lower layers (utils, datasets) never import the entry-point
layer (apis), and the library never drives tools/*.py in subprocesses (the demos that do live in
tools/). Each rule is checked on every module's syntax tree, and on the old layout it replaced."""
import ast
import glob
import os.path as osp
import re
from typing import Iterator, List, Tuple

import pytest

from conftest import ROOT

PACKAGE = osp.join(ROOT, 'mim_plugins')
LOWER = ('utils', 'datasets')
TOOL_SCRIPT = re.compile(r'(^|\s)tools/[\w/.-]+\.py\b')
# Calls that start a process: subprocess.*, os.system / popen / exec* / spawn* / posix_spawn*.
SPAWN = re.compile(r'^(subprocess\.\w+|os\.(system|popen|exec\w*|spawn\w*|posix_spawn\w*))$')


def modules(folder: str = '') -> List[str]:
    return sorted(glob.glob(osp.join(PACKAGE, folder, '**', '*.py'), recursive=True))


def module_name(path: str) -> str:
    """'mim_plugins.utils.convert' for mim_plugins/utils/convert.py (a package: its __init__)."""
    parts = osp.splitext(osp.relpath(path, ROOT))[0].split(osp.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported(tree: ast.AST, name: str, is_package: bool) -> Iterator[Tuple[int, List[str]]]:
    """``(line, modules)`` of every import in ``tree`` (the module ``name``), relative ones made
    absolute; for ``from X import y`` both ``X`` and ``X.y`` (y may be a submodule)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node.lineno, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                package = name.split('.') if is_package else name.split('.')[:-1]
                anchor = package[:len(package) - node.level + 1]
                base = '.'.join(anchor + ([node.module] if node.module else []))
            yield node.lineno, [base] + [f'{base}.{alias.name}' for alias in node.names]


def apis_imports(source: str, name: str, is_package: bool = False) -> List[str]:
    """``line: module`` of each import of mim_plugins.apis (or of a module in it) in ``source``."""
    found = []
    for line, targets in imported(ast.parse(source), name, is_package):
        hits = [m for m in targets if m == 'mim_plugins.apis' or m.startswith('mim_plugins.apis.')]
        found += [f'{line}: {hits[0]}'] if hits else []
    return found


def dotted(node: ast.AST) -> str:
    """'subprocess.run' for the expression ``subprocess.run`` ('' for anything else)."""
    if isinstance(node, ast.Attribute):
        head = dotted(node.value)
        return f'{head}.{node.attr}' if head else ''
    return node.id if isinstance(node, ast.Name) else ''


def names_a_tool(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) \
        and bool(TOOL_SCRIPT.search(node.value))


def is_python(node: ast.AST) -> bool:
    return dotted(node) == 'sys.executable'


def tool_runs(source: str) -> List[str]:
    """Where ``source`` runs a tools/ script: an argv literal (list or tuple) naming one or the
    Python interpreter, or a process-starting call given either; ``line: why``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.List, ast.Tuple)) and any(map(names_a_tool, node.elts)):
            found.append(f'{node.lineno}: argv of a tools/ script')
        elif isinstance(node, (ast.List, ast.Tuple)) and any(map(is_python, node.elts)):
            found.append(f'{node.lineno}: argv of the Python interpreter')
        if isinstance(node, ast.Call) and SPAWN.match(dotted(node.func)):
            args = [n for a in node.args + [k.value for k in node.keywords] for n in ast.walk(a)]
            if any(names_a_tool(n) or is_python(n) for n in args):
                found.append(f'{node.lineno}: {dotted(node.func)} of python / a tools/ script')
    return found


@pytest.mark.parametrize('path', [p for folder in LOWER for p in modules(folder)],
                         ids=lambda p: osp.relpath(p, ROOT))
def test_lower_layers_do_not_import_apis(path):
    with open(path) as f:
        source = f.read()
    assert apis_imports(source, module_name(path), path.endswith('__init__.py')) == [], \
        f'{osp.relpath(path, ROOT)} imports the entry-point layer; import from mim_plugins.utils'


@pytest.mark.parametrize('path', modules(), ids=lambda p: osp.relpath(p, ROOT))
def test_library_runs_no_tools_in_subprocesses(path):
    with open(path) as f:
        assert tool_runs(f.read()) == [], f'{osp.relpath(path, ROOT)}: move it to tools/'


def test_the_rules_catch_the_old_layout_and_spare_what_is_allowed():
    # mim_plugins/utils/convert.py and datasets/part_maps.py before the error moved to utils
    old = 'from ..apis.errors import UserInputError\n'
    assert apis_imports(old, 'mim_plugins.utils.convert') == ['1: mim_plugins.apis.errors']
    for source in ('from mim_plugins.apis import run_cli', 'import mim_plugins.apis.errors',
                   'from mim_plugins import apis', 'from .. import apis'):
        assert apis_imports(source, 'mim_plugins.datasets.part_maps'), source
    assert apis_imports('from . import errors', 'mim_plugins.utils', is_package=True) == []
    assert apis_imports('from .errors import UserInputError', 'mim_plugins.utils.convert') == []
    # mim_plugins/apis/demo.py and demo_semmae.py: a runner, and tool argvs handed to it
    assert tool_runs("cmd = [sys.executable] + args\nsubprocess.run(cmd, cwd=ROOT)\n"
                     "run_tool(['tools/train.py', config, '--work-dir', work_dir])\n"
                     "run_tool(['tools/part_learning/learn_parts.py', '--config', PRETRAIN])\n") \
        == ['1: argv of the Python interpreter', '3: argv of a tools/ script',
            '4: argv of a tools/ script']
    assert tool_runs("subprocess.run([sys.executable, 'tools/train.py', config])") == \
        ['1: subprocess.run of python / a tools/ script', '1: argv of a tools/ script']
    assert tool_runs("os.system('python tools/test.py cfg ckpt')") == \
        ['1: os.system of python / a tools/ script']
    # datasets/shards.py: a pipe: URL's command, and a message naming the repacking tool
    assert tool_runs("_REPACK = 'tools/dataset_converters/pack_shards.py'\n"
                     "subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE)\n"
                     "raise UserInputError(f'Fix: repack with python {_REPACK}.')\n") == []
