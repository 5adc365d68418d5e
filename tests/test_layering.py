"""The layering a reader can see, checked on every module's syntax tree (imports inside
functions included):

- each part of ``mim_plugins`` imports only the parts below it (``LAYERS``: pure functions and
  errors at the bottom; models, data, engine; figures and probes; entry points and the web demo on
  top), so ``utils`` and ``datasets`` never import ``apis``, models never import the web demo or
  the figures, and nothing imports the web demo;
- the library never imports ``tools`` nor drives ``tools/*.py`` in subprocesses (the demos that do
  live in tools/);
- Gradio is imported by ``webapp/app.py`` alone (the rest of the web demo is plain inference).

Each rule is also run on sources that break it, so a rule that cannot fail is caught."""
import ast
import glob
import os.path as osp
import re
from typing import Iterator, List, Tuple

import pytest

from conftest import ROOT

PACKAGE = osp.join(ROOT, 'mim_plugins')
# part -> the parts it may import (derived from the code; a new edge is a design decision: add
# it here). 'masking' is mim_plugins/masking.py.
LAYERS = {
    'utils': set(),
    'masking': set(),
    'models': {'masking', 'utils'},
    'datasets': {'utils'},
    'engine': {'datasets', 'models', 'utils'},
    'parts': {'datasets', 'engine', 'utils'},
    'visualization': {'datasets', 'engine', 'masking', 'models', 'parts', 'utils'},
    'evaluation': {'datasets', 'parts', 'utils', 'visualization'},
    'fidelity': {'masking', 'models', 'utils'},
    'apis': {'engine', 'models', 'utils'},
    'benchmark': {'apis', 'datasets', 'parts', 'utils'},
    'webapp': {'datasets', 'masking', 'models', 'parts', 'utils', 'visualization'},
}
GRADIO_ONLY_IN = 'mim_plugins.webapp.app'
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


def part_of(name: str) -> str:
    """'models' for mim_plugins.models.supmae, 'masking' for mim_plugins.masking ('' for the
    package itself, which imports the parts to register them)."""
    parts = name.split('.')
    return parts[1] if len(parts) > 1 else ''


def layer_violations(source: str, name: str, is_package: bool = False) -> List[str]:
    """``line: what`` for every import in ``source`` (module ``name``) that breaks a rule."""
    own, found, seen = part_of(name), [], set()
    for line, targets in imported(ast.parse(source), name, is_package):
        for target in targets:
            top, below = target.split('.')[0], part_of(target)
            if (line, top, below) in seen:  # 'from X import y' yields X and X.y: one report
                continue
            seen.add((line, top, below))
            if top == 'tools':
                found.append(f'{line}: {target} (the library never imports tools/)')
            elif top == 'gradio' and name != GRADIO_ONLY_IN:
                found.append(f'{line}: gradio (only {GRADIO_ONLY_IN} imports it)')
            elif top == 'mim_plugins' and own and below and below != own and below in LAYERS \
                    and below not in LAYERS[own]:
                found.append(f'{line}: {target} ({own} may import only {sorted(LAYERS[own])})')
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


@pytest.mark.parametrize('path', modules(), ids=lambda p: osp.relpath(p, ROOT))
def test_each_part_imports_only_the_layers_below_it(path):
    with open(path) as f:
        source = f.read()
    assert layer_violations(source, module_name(path), path.endswith('__init__.py')) == [], \
        osp.relpath(path, ROOT)


def test_every_part_has_a_layer_and_the_layers_have_no_cycle():
    parts = {part_of(module_name(p)) for p in modules()} - {''}
    assert parts == set(LAYERS), parts ^ set(LAYERS)
    placed: set = set()
    while len(placed) < len(LAYERS):  # peel off the parts whose imports are all placed
        ready = {p for p, below in LAYERS.items() if p not in placed and below <= placed}
        assert ready, f'a cycle among {sorted(set(LAYERS) - placed)}'
        placed |= ready


@pytest.mark.parametrize('path', modules(), ids=lambda p: osp.relpath(p, ROOT))
def test_library_runs_no_tools_in_subprocesses(path):
    with open(path) as f:
        assert tool_runs(f.read()) == [], f'{osp.relpath(path, ROOT)}: move it to tools/'


def test_the_layer_rules_catch_what_they_forbid_and_spare_what_is_allowed():
    assert layer_violations('from ..apis.errors import UserInputError\n',
                            'mim_plugins.utils.convert') == \
        ["1: mim_plugins.apis.errors (utils may import only [])"]
    assert layer_violations('from mim_plugins.apis import run_cli', 'mim_plugins.datasets.x')
    assert layer_violations('def f():\n    from ..webapp import views\n',
                            'mim_plugins.models.supmae') == \
        ["2: mim_plugins.webapp (models may import only ['masking', 'utils'])"]
    assert layer_violations('from mim_plugins.visualization import save_grid',
                            'mim_plugins.models.semmae')
    assert layer_violations('from tools.demo_stages import run_tool', 'mim_plugins.apis.train') \
        == ['1: tools.demo_stages (the library never imports tools/)']
    assert layer_violations('import gradio as gr', 'mim_plugins.webapp.views') == \
        ['1: gradio (only mim_plugins.webapp.app imports it)']
    assert layer_violations('import torch, mim_plugins.apis', 'mim_plugins.utils.stack') == \
        ['1: mim_plugins.apis (utils may import only [])']
    for allowed, name in (('import gradio as gr', 'mim_plugins.webapp.app'),
                          ('from ..masking import random_mask', 'mim_plugins.models.semmae'),
                          ('from .errors import UserInputError', 'mim_plugins.utils.convert'),
                          ('from . import datasets, engine, models', 'mim_plugins'),
                          ('from ..apis import run_cli', 'mim_plugins.benchmark.cli')):
        assert layer_violations(allowed, name, name == 'mim_plugins') == [], allowed


def test_the_tool_rules_catch_what_they_forbid_and_spare_what_is_allowed():
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
