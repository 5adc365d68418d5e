"""The documentation cannot drift: every shell command in a fenced block of README.md and
docs/*.md names a make target that exists, scripts and configs that exist, and only flags that
the tool's own ``--help`` lists (each tool's ``--help`` is run); every relative link resolves.

A command is checked by its program: ``make`` (targets of the Makefile), ``python`` /
``.venv/bin/python`` (a script under the repository, or ``-m pytest`` with its paths), ``bash``
(a script, syntax-checked with ``bash -n``, whose flags must be those of the ``tools/*.py`` it
forwards them to) and ``mim train|test`` (mim's own flags or the tool's). A program with no rule
here is itself a problem, so a new kind of command gets a rule rather than no check.
"""
import glob
import json
import os.path as osp
import re
import shlex
import subprocess
import sys
from typing import Callable, Dict, List, Sequence, Tuple

import pytest

from conftest import ROOT, run_env

DOCS = ['README.md'] + sorted(osp.relpath(p, ROOT)
                              for p in glob.glob(osp.join(ROOT, 'docs', '*.md')))
SHELL_FENCE = re.compile(r'^```(?:bash|sh|shell|console)\n(.*?)^```', re.M | re.S)
LINK = re.compile(r'\]\(([^)\s]+)\)')
# Tokens naming something inside the repository: these must exist (outputs go to data/,
# work_dirs/ or a placeholder, which are not checked).
REPO_ROOTS = ('configs/', 'configs_seg/', 'tools/', 'tests/', 'docs/', 'mim_plugins/',
              'requirements/')
PYTHONS = ('python', 'python3', '.venv/bin/python')

# ('tools/train.py',), ('tools/benchmark.py', 'pipeline'), ('mim', 'train')
HelpKey = Tuple[str, ...]
HelpOf = Callable[[HelpKey], str]

# Runs each tool's ``--help`` in one process, so that the stack is imported once, not per tool.
HELP_DRIVER = r'''
import contextlib, io, json, os.path, runpy, sys
out = {}
for key in json.loads(sys.argv[1]):
    buf = io.StringIO()
    sys.argv = [key[0], *key[1:], '--help']
    # as `python tools/x.py` does: the script's folder first, for its sibling modules
    sys.path.insert(0, os.path.dirname(os.path.abspath(key[0])))
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            runpy.run_path(key[0], run_name='__main__')
    except SystemExit:
        pass
    except Exception as exc:
        buf.write(f'HELP FAILED: {exc!r}')
    sys.path.pop(0)
    out['\0'.join(key)] = buf.getvalue()
print(json.dumps(out))
'''


def shell_commands(markdown: str) -> List[str]:
    """The commands of the fenced shell blocks, continuation lines joined, comment lines dropped."""
    commands = []
    for block in SHELL_FENCE.findall(markdown):
        for line in block.replace('\\\n', ' ').splitlines():
            if line.strip() and not line.lstrip().startswith('#'):
                commands.append(line.strip())
    return commands


def words(command: str) -> List[str]:
    """The command's words without a trailing comment, leading ``VAR=value`` assignments or the
    ``[ ]`` that mark optional arguments."""
    argv = [w.strip('[]') for w in shlex.split(command, comments=True)]
    argv = [w for w in argv if w]
    while argv and re.match(r'^[A-Z_][A-Z0-9_]*=', argv[0]):
        argv.pop(0)
    return argv


def flags(argv: Sequence[str]) -> List[str]:
    return [w.split('=', 1)[0] for w in argv if re.match(r'^--[a-z]', w)]


def repo_paths(argv: Sequence[str]) -> List[str]:
    return [w for w in argv if w.startswith(REPO_ROOTS)]


def help_keys(argv: Sequence[str]) -> List[HelpKey]:
    """The ``--help`` outputs needed to check this command's flags."""
    if not argv:
        return []
    if argv[0] in PYTHONS and len(argv) > 1 and argv[1].endswith('.py'):
        # a bare lowercase word right after the script is a subcommand (benchmark.py pipeline)
        sub = argv[2:3] if len(argv) > 2 and re.fullmatch(r'[a-z][a-z_-]*', argv[2]) else []
        return [(argv[1], *sub)]
    if argv[0] == 'bash' and len(argv) > 1 and osp.isfile(osp.join(ROOT, argv[1])):
        with open(osp.join(ROOT, argv[1])) as f:
            return [(t,) for t in sorted(set(re.findall(r'tools/\w+\.py', f.read())))]
    if argv[0] == 'mim' and len(argv) > 1:
        return [('mim', argv[1]), (f'tools/{argv[1]}.py',)]
    return []


def make_targets(makefile: str) -> set:
    with open(makefile) as f:
        return set(re.findall(r'^([A-Za-z0-9_.-]+):', f.read(), re.M))


def check_command(command: str, help_of: HelpOf, root: str = ROOT) -> List[str]:
    """Problems with one documented command (empty when it is fine)."""
    argv = words(command)
    if not argv:
        return []
    prog, problems = argv[0], []
    for path in repo_paths(argv):
        if not glob.glob(osp.join(root, path)):
            problems.append(f'{path} does not exist')
    if prog == 'make':
        targets = make_targets(osp.join(root, 'Makefile'))
        problems += [f'make target {t!r} is not in the Makefile'
                     for t in argv[1:] if '=' not in t and t not in targets]
        return problems
    if prog in PYTHONS:
        if argv[1:3] == ['-m', 'pytest']:
            return problems
        if len(argv) < 2 or not argv[1].endswith('.py'):
            return problems + [f'no rule for {command!r}']
    elif prog == 'bash':
        if len(argv) < 2 or not argv[1].endswith('.sh'):
            return problems + [f'no rule for {command!r}']
        if osp.isfile(osp.join(root, argv[1])):
            syntax = subprocess.run(['bash', '-n', argv[1]], cwd=root, capture_output=True,
                                    text=True)
            if syntax.returncode:
                problems.append(f'{argv[1]} has a syntax error: {syntax.stderr.strip()}')
    elif prog == 'mim':
        if len(argv) < 3 or argv[1] not in ('train', 'test') or \
                argv[2] not in ('mmpretrain', 'mmsegmentation'):
            return problems + [f'no rule for {command!r}']
    else:
        return problems + [f'no rule for program {prog!r} in {command!r}']
    if problems:  # the script itself is missing: its help cannot be asked
        return problems
    helps = [help_of(key) for key in help_keys(argv)]
    for key, text in zip(help_keys(argv), helps):
        if 'HELP FAILED' in text or 'usage' not in text.lower():
            problems.append(f'{" ".join(key)} --help did not print a usage: {text[-300:]!r}')
    tools = ' / '.join(' '.join(k) for k in help_keys(argv))
    for flag in flags(argv):
        if not any(re.search(rf'(?<![\w-]){re.escape(flag)}(?![\w-])', t) for t in helps):
            problems.append(f'{flag} is not a flag of {tools}')
    return problems


class Helps:
    """``--help`` outputs, fetched in one batch per call of ``prefetch`` and kept."""

    def __init__(self) -> None:
        self.cache: Dict[HelpKey, str] = {}

    def prefetch(self, keys: Sequence[HelpKey]) -> None:
        tools = sorted({k for k in keys if k[0] != 'mim' and k not in self.cache
                        and osp.isfile(osp.join(ROOT, k[0]))})
        if tools:
            out = subprocess.run([sys.executable, '-c', HELP_DRIVER, json.dumps(tools)], cwd=ROOT,
                                 env=run_env(), capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr[-2000:]
            fetched = json.loads(out.stdout.strip().splitlines()[-1])
            self.cache.update({tuple(k.split('\0')): v for k, v in fetched.items()})
        for key in {k for k in keys if k[0] == 'mim' and k not in self.cache}:
            mim = osp.join(osp.dirname(sys.executable), 'mim')
            out = subprocess.run([mim, key[1], '--help'], capture_output=True, text=True,
                                 env=run_env(), timeout=120)
            self.cache[key] = out.stdout + out.stderr

    def __call__(self, key: HelpKey) -> str:
        if key not in self.cache:
            self.prefetch([key])
        return self.cache[key]


@pytest.fixture(scope='module')
def helps() -> Helps:
    return Helps()


def documented_commands() -> List[Tuple[str, str]]:
    found = []
    for doc in DOCS:
        with open(osp.join(ROOT, doc)) as f:
            found += [(doc, c) for c in shell_commands(f.read())]
    return found


def test_every_documented_command_names_what_exists(helps):
    commands = documented_commands()
    assert len(commands) >= 30, 'the fenced shell blocks were not found'
    helps.prefetch([k for _, c in commands for k in help_keys(words(c))])
    problems = [f'{doc}: {cmd}\n    {p}'
                for doc, cmd in commands for p in check_command(cmd, helps)]
    assert not problems, '\n'.join(problems)


def test_the_checker_catches_drift(tmp_path, helps):
    """A synthetic page whose commands drifted from the code: each drift is reported."""
    page = tmp_path / 'drifted.md'
    page.write_text('\n'.join([
        'Some prose with `make not-a-target` in it, which is not a fenced command.', '',
        '```bash',
        'make demo          # fine',
        'make demo-fast     # a target that was renamed away',
        'python tools/train.py configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py \\',
        '    --work-dir work_dirs/x [--no-validate]   # fine, over two lines',
        'python tools/train.py CONFIG --resume-from CKPT   # a flag train.py never had',
        'python tools/train_v2.py CONFIG                    # a script that does not exist',
        'bash tools/dist_train.sh configs/mae/mae_vit-tiny-p4_1xb64-coslr-1e_mnist5k.py 8',
        'bash tools/dist_train.sh CONFIG 8 --ampp      # forwarded to train.py, not a flag of it',
        'mim train mmpretrain CONFIG --gpus 8 --launcher pytorch   # fine',
        'conda activate mim                                 # a program without a rule',
        '```',
    ]))
    commands = shell_commands(page.read_text())
    assert len(commands) == 9  # prose and comment lines are not commands; '\\' joins lines
    problems = {c: check_command(c, helps) for c in commands}
    assert [c for c, p in problems.items() if not p] == [commands[0], commands[2], commands[7]]
    report = '\n'.join(p for ps in problems.values() for p in ps)
    for drift in ("make target 'demo-fast'", '--resume-from is not a flag of tools/train.py',
                  'tools/train_v2.py does not exist',
                  'configs/mae/mae_vit-tiny-p4_1xb64-coslr-1e_mnist5k.py does not exist',
                  '--ampp is not a flag of tools/train.py', "no rule for program 'conda'"):
        assert drift in report, report


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(path: str) -> set:
    with open(path) as f:
        text = re.sub(r'^```.*?^```', '', f.read(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r'^#+ (.*)$', text, re.M)}


@pytest.mark.parametrize('doc', DOCS + sorted(osp.relpath(p, ROOT) for p in glob.glob(
    osp.join(ROOT, 'configs*', '**', 'README.md'), recursive=True)))
def test_relative_links_resolve(doc):
    with open(osp.join(ROOT, doc)) as f:
        links = LINK.findall(f.read())
    broken = []
    for link in links:
        if re.match(r'^[a-z]+:', link):  # http(s):, mailto:
            continue
        path, _, anchor = link.partition('#')
        target = osp.normpath(osp.join(ROOT, osp.dirname(doc), path or osp.basename(doc)))
        if not osp.exists(target):
            broken.append(f'{link}: no such file')
        elif anchor and target.endswith('.md') and anchor not in anchors(target):
            broken.append(f'{link}: no heading with that anchor')
    assert not broken, f'{doc}: ' + '; '.join(broken)


def test_readme_fits_five_minutes():
    with open(osp.join(ROOT, 'README.md')) as f:
        text = f.read()
    assert len(text.splitlines()) <= 250
    for must in ('make demo', 'make test-fast', 'make test', '## Code map', 'docs/'):
        assert must in text
