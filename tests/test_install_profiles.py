"""The two install profiles (docs/install.md). mim_plugins registers segmentation wherever
``mmseg.models`` imports: the lite profile's onedl-mmsegmentation needs no mmcv ops, so a missing
``mmcv.ops`` stops nothing. Where mmseg does not import, everything else still registers and a
segmentation config ends in one line naming the command that fixes it; so do a torchvision built
for another torch and an mmcv that mmpretrain rejects. Missing packages are simulated in a
subprocess whose import system hides them, exactly as an environment without them fails to import
them. The installer's two branches run against a stand-in Python that records its pip commands;
the compiled profile itself, where pip's cache holds its mmcv wheel (tests marked slow)."""
import json
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest

from conftest import ROOT, run_env

SEG_CFG = 'configs_seg/mae/mae-tiny-p4_upernet_1xb16-300it_mnist5k-seg-28x28.py'
SETUP_FIX = 'PROFILE=lite bash tools/setup_env.sh'


def hide(*prefixes: str) -> str:
    """Python run first in the subprocess: importing a module under ``prefixes`` raises
    ModuleNotFoundError."""
    return f'''
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith({prefixes!r}):
            raise ModuleNotFoundError(f'No module named {{name!r}} (hidden)', name=name)
        return None
sys.meta_path.insert(0, Hide())
'''


HIDE_SEG = hide('mmseg')  # an environment without any mmseg distribution
HIDE_OPS = hide('mmcv.ops', 'mmcv._ext')  # mmcv-lite, whichever mmcv is installed

REGISTERED = '''
import importlib, inspect
from mmengine.registry import Registry
def registered(packages=('mmengine.registry', 'mmpretrain.registry')):
    """(registry scope.name, type) of every mim_plugins class in the registries of
    ``packages``."""
    found = set()
    for package in packages:
        for reg in vars(importlib.import_module(package)).values():
            if isinstance(reg, Registry):
                found.update((f'{reg.scope}.{reg.name}', name)
                             for name, obj in reg.module_dict.items()
                             if inspect.getmodule(obj).__name__.startswith('mim_plugins'))
    return sorted(found)
'''


def python(code: str, env=None, timeout=300):
    return subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env or run_env(),
                          capture_output=True, text=True, timeout=timeout)


def mmseg_distribution() -> str:
    """Which distribution provides the installed ``mmseg``."""
    for dist in ('onedl-mmsegmentation', 'mmsegmentation'):
        try:
            metadata.version(dist)
            return dist
        except metadata.PackageNotFoundError:
            pass
    pytest.fail('no mmseg distribution installed: both install profiles install one')


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_without_mmseg_everything_but_segmentation_registers():
    without = python(HIDE_SEG + REGISTERED + '''
import json
import mim_plugins
assert 'mmseg' not in sys.modules
print(json.dumps({'registered': registered(), 'modules': sorted(sys.modules)}))
''')
    assert without.returncode == 0, without.stderr[-3000:]
    out = json.loads(without.stdout.strip().splitlines()[-1])
    assert 'mim_plugins.datasets.seg_transforms' not in out['modules']
    assert 'mim_plugins.engine.layer_decay' not in out['modules']
    names = {name for _, name in out['registered']}
    assert {'SupMAE', 'SemMAE', 'BottleneckMAE', 'LoadPartMap', 'SemMAELambdaHook',
            'MultiClsTokenViT', 'ResumableEpochBasedTrainLoop'} <= names
    # the same mmpretrain / mmengine registrations as with segmentation available
    full = python(REGISTERED + '''
import json
import mim_plugins
print(json.dumps(registered()))
''')
    assert full.returncode == 0, full.stderr[-3000:]
    assert out['registered'] == json.loads(full.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_segmentation_registers_without_mmcv_ops():
    """The lite profile: mmcv's compiled ops absent, segmentation still registers and a UperNet
    segmentor runs. Upstream mmsegmentation (the compiled profile) cannot do without them: there
    the reason is named instead."""
    result = python(HIDE_OPS + REGISTERED + '''
import json
import mim_plugins
from mim_plugins.utils.stack import seg_missing
missing = seg_missing()
out = {'missing': missing, 'ops': 'mmcv.ops' in sys.modules}
if missing is None:
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(%r)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 28, 28), mode='tensor')
    out.update(registered=registered(('mmseg.registry',)), shape=list(logits.shape),
               modules=[m for m in sys.modules if m.startswith('mim_plugins')])
print(json.dumps(out))
''' % SEG_CFG)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out['ops'] is False
    if mmseg_distribution() == 'mmsegmentation':
        assert out['missing'].startswith('an mmsegmentation that imports here (`import '
                                         'mmseg.models` fails: ')
        return
    assert out['missing'] is None
    assert {'mim_plugins.datasets.seg_transforms', 'mim_plugins.engine.layer_decay'} <= \
        set(out['modules'])
    names = {name for _, name in out['registered']}
    assert {'CheckSegLabels', 'ResizeSegMap', 'BackboneLayerDecayOptimWrapperConstructor'} <= names
    assert out['shape'] == [2, 10, 28, 28]  # the demo's 10 digit classes at the input size


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
@pytest.mark.parametrize('tool', ['train', 'test'])
def test_seg_config_without_mmseg_names_the_setup(tool):
    argv = [f'tools/{tool}.py', SEG_CFG] + (['missing.pth'] if tool == 'test' else [])
    result = python(HIDE_SEG + f'''
import runpy
sys.argv = {argv!r}
runpy.run_path('tools/{tool}.py', run_name='__main__')
''')
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    # one error line (setuptools' pkg_resources warnings may come first with TORCH=2.14.1)
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith('ERROR')]
    assert line.startswith(f"ERROR: Config '{SEG_CFG}' (default_scope 'mmseg') needs "
                           'segmentation, and this environment lacks an mmsegmentation that '
                           "imports here (`import mmseg.models` fails: No module named 'mmseg'")
    assert 'make setup`' in line and SETUP_FIX in line and 'without a compiler' in line


def user_config(tmp_path) -> str:
    """A user's config that inherits an mmseg base by the package name."""
    path = tmp_path / 'user_seg.py'
    path.write_text("_base_ = ['mmseg::_base_/default_runtime.py']\n")
    return str(path)


def load(config: str):
    import argparse

    from mim_plugins.apis.common import load_config
    return load_config(argparse.Namespace(config=config, cfg_options=None, work_dir=None,
                                          launcher='none', local_rank=0))


@pytest.fixture
def no_mmsegmentation_distribution(monkeypatch):
    """mmengine finds no distribution named mmsegmentation: the lite profile's fork, or no mmseg
    at all."""
    import mmengine.config.config as mmengine_config
    real = mmengine_config.is_installed
    monkeypatch.setattr(mmengine_config, 'is_installed',
                        lambda p: p not in ('mmseg', 'mmsegmentation') and real(p))


def test_mmseg_base_without_mmseg_names_the_setup(monkeypatch, tmp_path,
                                                  no_mmsegmentation_distribution):
    from mim_plugins.utils import UserInputError, stack
    monkeypatch.setattr(stack, 'seg_missing', lambda: "mmsegmentation (`import mmseg` fails)")
    config = user_config(tmp_path)
    with pytest.raises(UserInputError) as info:
        load(config)
    message = str(info.value)
    assert message.startswith(f"Config '{config}' (it inherits mmseg:: bases) needs segmentation")
    assert 'lacks mmsegmentation' in message and SETUP_FIX in message and '\n' not in message


def test_mmseg_base_beside_the_fork_names_the_relative_bases(tmp_path,
                                                             no_mmsegmentation_distribution):
    """Segmentation runs, but mmengine looks `mmseg::` up by the distribution name."""
    from mim_plugins.utils import UserInputError
    from mim_plugins.utils.stack import seg_missing
    assert seg_missing() is None
    config = user_config(tmp_path)
    with pytest.raises(UserInputError) as info:
        load(config)
    message = str(info.value)
    assert message.startswith(f"Config '{config}' inherits mmseg:: bases, which mmengine finds "
                              'only in the distribution named mmsegmentation')
    assert 'configs_seg/_base_/' in message and 'PROFILE=compiled' in message
    assert '\n' not in message


@pytest.mark.parametrize('models_init,reason', [
    ("raise ModuleNotFoundError(\"No module named 'mmcv._ext'\", name='mmcv._ext')",
     "an mmsegmentation that imports here (`import mmseg.models` fails: No module named "
     "'mmcv._ext')"),
    ("raise AssertionError('MMCV==2.2.0 is used but incompatible. Please install mmcv>=2.0.0rc4, "
     "<2.2.0.')", 'an mmsegmentation that accepts the installed mmcv (MMCV==2.2.0 is used'),
])
@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_an_mmseg_that_cannot_run_disables_segmentation_with_the_reason(tmp_path, models_init,
                                                                        reason):
    """Upstream mmsegmentation beside mmcv-lite (its models import mmcv's ops), or beside an
    mmcv it rejects: mim_plugins still imports, without segmentation, and says why."""
    fake = tmp_path / 'mmseg'
    (fake / 'models').mkdir(parents=True)
    (fake / '__init__.py').write_text("__version__ = '1.2.2'\n")
    (fake / 'models' / '__init__.py').write_text(models_init + '\n')
    env = dict(run_env(), PYTHONPATH=f'{tmp_path}{os.pathsep}{ROOT}')
    result = python('''
import sys
import mim_plugins
from mim_plugins.utils.stack import seg_missing
print(seg_missing())
print('mim_plugins.datasets.seg_transforms' in sys.modules)
''', env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    missing, registered = result.stdout.strip().splitlines()[-2:]
    assert missing.startswith(reason)
    assert registered == 'False'


def test_torchvision_for_another_torch_is_explained(tmp_path):
    """What a registry torchvision does beside the machine's CPU torch 2.13.0."""
    fake = tmp_path / 'torchvision'
    fake.mkdir()
    (fake / '__init__.py').write_text(
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    env = dict(run_env(), PYTHONPATH=f'{tmp_path}{os.pathsep}{ROOT}')
    result = python('import mim_plugins', env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('mim_plugins.utils.stack.StackError: torchvision ')
    assert 'does not load with torch' in last and 'operator torchvision::nms does not exist' in last
    assert 'make setup' in last and 'requirements/torch.txt' in last
    assert 'During handling' not in result.stderr  # one error, not a chain


def test_mmcv_that_mmpretrain_rejects_is_explained():
    """mmpretrain 1.2.0 asserts mmcv < 2.4.0 at import."""
    result = python("import mmcv; mmcv.__version__ = '2.4.0'; import mim_plugins")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('mim_plugins.utils.stack.StackError: mmpretrain ')
    assert 'rejects the installed stack (MMCV==2.4.0 is used but incompatible' in last
    assert 'make setup' in last and 'mmcv 2.1.0' in last
    assert 'During handling' not in result.stderr


def test_setup_command_names_the_running_environment(monkeypatch):
    from mim_plugins.utils import stack
    monkeypatch.setattr(sys, 'prefix', os.path.join(ROOT, '.venv'))
    monkeypatch.setattr(sys, 'base_prefix', '/usr')
    assert stack.setup_command('lite') == f'`make setup` (= `{SETUP_FIX}`)'
    monkeypatch.setattr(sys, 'prefix', '/tmp/venv-c')
    assert stack.setup_command('compiled') == \
        '`VENV=/tmp/venv-c make setup PROFILE=compiled` (= `VENV=/tmp/venv-c PROFILE=compiled ' \
        'bash tools/setup_env.sh`)'


def setup_env(tmp_path, timeout=60, **env):
    """Run the installer with ``env`` on an environment path under ``tmp_path``."""
    return subprocess.run(['bash', 'tools/setup_env.sh'], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, VENV=str(tmp_path / 'venv'), **env),
                          timeout=timeout)


@pytest.mark.parametrize('env,message', [
    (dict(PROFILE='tiny'), 'PROFILE=tiny is not a profile. Fix: PROFILE=lite (the default'),
    (dict(PROFILE='full'), 'PROFILE=full is now PROFILE=compiled, and no longer needed for '
     'segmentation'),
    (dict(TORCH='2.15.0'), 'TORCH=2.15.0 is not offered. Fix: TORCH=2.12.1'),
    (dict(PROFILE='compiled', TORCH='2.14.1'),
     "TORCH=2.14.1 works with PROFILE=lite only: mmcv 2.1.0's ops do not compile against torch "
     '>= 2.14'),
])
def test_installer_refuses_bad_choices_in_one_line(tmp_path, env, message):
    result = setup_env(tmp_path, **env)
    assert result.returncode == 1 and result.stdout == ''
    assert result.stderr.count('\n') == 1 and message in result.stderr
    assert not (tmp_path / 'venv').exists()  # refused before anything was installed


def test_installer_keeps_a_compiled_environment_compiled(tmp_path):
    """A compiled environment already runs all the lite one does; a newer torch would break its
    ops. An environment stamped 'full' (before the profiles were renamed) is a compiled one."""
    for stamp in ('compiled', 'full'):
        (tmp_path / 'venv').mkdir(exist_ok=True)
        (tmp_path / 'venv' / '.mim_plugins_stack').write_text(f'{stamp} 2.12.1 0123456789abcdef\n')
        result = setup_env(tmp_path, PROFILE='lite', TORCH='2.14.1')
        assert result.returncode == 1 and result.stderr.count('\n') == 1
        assert 'has the compiled profile, whose mmcv ops break with another torch' in result.stderr


# A stand-in for the environment's Python: it records each call (with MMCV_WITH_OPS) and answers
# `pip show DIST` from $INSTALLED; other pip commands succeed; `-c` checks fail (nothing installed
# yet); the final stack check (`python -`) passes.
FAKE_PYTHON = '''#!/usr/bin/env bash
echo "MMCV_WITH_OPS=${MMCV_WITH_OPS:-} $*" >> "$CALLS"
case "$*" in
  *" pip "*" show "*) grep -qx -- "${@: -1}" "$INSTALLED" ;;
  *" pip "*) exit 0 ;;
  "-") cat > /dev/null ;;
  *) exit 1 ;;
esac
'''


def installer_calls(tmp_path, installed, **env) -> list:
    """The pip commands the installer runs for ``env`` in an environment holding ``installed``."""
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'python').write_text(FAKE_PYTHON)
    (venv / 'bin' / 'python').chmod(0o755)
    (tmp_path / 'installed').write_text(''.join(f'{d}\n' for d in installed))
    result = setup_env(tmp_path, CALLS=str(tmp_path / 'calls'),
                       INSTALLED=str(tmp_path / 'installed'), **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (venv / '.mim_plugins_stack').read_text().startswith(f"{env['PROFILE']} 2.12.1 ")
    calls = (tmp_path / 'calls').read_text().splitlines()
    return [c.replace(' -m pip --disable-pip-version-check', ' pip') for c in calls
            if ' pip ' in c and ' show ' not in c]


def test_installer_lite_branch_compiles_nothing(tmp_path):
    """From the compiled profile to the lite one: the compiled distributions go, mmcv-lite and
    the fork come, and no mmcv is built."""
    calls = installer_calls(tmp_path, ['mmcv', 'mmsegmentation'], PROFILE='lite')
    assert 'MMCV_WITH_OPS= pip uninstall -q -y mmcv' in calls
    assert 'MMCV_WITH_OPS= pip uninstall -q -y mmsegmentation' in calls
    assert 'MMCV_WITH_OPS= pip install -q mmcv-lite==2.1.0' in calls
    assert ('MMCV_WITH_OPS= pip install -q -r requirements/runtime.txt -r requirements/seg.txt '
            '-r requirements/tests.txt -r requirements/photos.txt') in calls
    assert not [c for c in calls if 'mmcv==' in c or c.startswith('MMCV_WITH_OPS=1')]


def test_installer_compiled_branch_builds_mmcv_with_ops(tmp_path):
    """From the lite profile to the compiled one: the lite distributions go first (they share
    the `mmcv` and `mmseg` packages), then mmcv is built with its ops against the installed torch,
    then upstream mmsegmentation."""
    calls = installer_calls(tmp_path, ['mmcv-lite', 'onedl-mmsegmentation'], PROFILE='compiled')
    build = 'MMCV_WITH_OPS=1 pip install -q --no-build-isolation mmcv==2.1.0'
    seg = ('MMCV_WITH_OPS=1 pip install -q -r requirements/runtime.txt '
           '-r requirements/seg-compiled.txt -r requirements/tests.txt '
           '-r requirements/photos.txt')
    order = [calls.index(c) for c in (
        'MMCV_WITH_OPS= pip install -q -r requirements/torch.txt',
        'MMCV_WITH_OPS= pip uninstall -q -y mmcv-lite',
        'MMCV_WITH_OPS= pip uninstall -q -y onedl-mmsegmentation', build, seg)]
    assert order == sorted(order)
    assert not [c for c in calls if 'mmcv-lite==' in c]


def test_requirements_pin_each_profiles_mmseg():
    def pins(name):
        with open(os.path.join(ROOT, 'requirements', name)) as f:
            return [ln.split('#')[0].strip() for ln in f if ln.split('#')[0].strip()]
    assert 'onedl-mmsegmentation==1.4.2' in pins('seg.txt')
    assert not [p for p in pins('seg.txt') if p.startswith('mmsegmentation')]
    assert 'mmsegmentation==1.2.2' in pins('seg-compiled.txt')


def cached_compiled_mmcv() -> list:
    """Wheels of mmcv 2.1.0 that pip built earlier and keeps in its cache."""
    result = subprocess.run([sys.executable, '-m', 'pip', 'cache', 'list', 'mmcv',
                             '--format=abspath'], capture_output=True, text=True)
    return [w for w in result.stdout.split()
            if os.path.basename(w).startswith('mmcv-2.1.0-')]


@pytest.mark.slow
def test_compiled_profile_installs_and_segments(tmp_path):
    """PROFILE=compiled into a new environment, from the mmcv wheel pip's cache holds (building
    it takes ~20 min on 2 cores, so this runs only where it was built once), then a UperNet
    segmentor of configs_seg/ on upstream mmsegmentation with mmcv's ops."""
    if not cached_compiled_mmcv():
        pytest.skip('no compiled mmcv 2.1.0 wheel in pip\'s cache: run PROFILE=compiled '
                    'bash tools/setup_env.sh once (it compiles mmcv, ~20 min)')
    result = setup_env(tmp_path, timeout=1800, PROFILE='compiled')
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r'mmcv 2\.1\.0 \(ops\).*mmsegmentation 1\.2\.2', result.stdout)
    check = subprocess.run([str(tmp_path / 'venv' / 'bin' / 'python'), '-c', f'''
import json, sys, torch
import mmcv.ops, mim_plugins
from importlib.metadata import version
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
init_default_scope('mmseg')
cfg = Config.fromfile({SEG_CFG!r})
cfg.model.backbone.init_cfg = None
model = MODELS.build(cfg.model).eval()
with torch.no_grad():
    logits = model(torch.rand(2, 3, 28, 28), mode='tensor')
print(json.dumps([version('mmsegmentation'), list(logits.shape),
                  'mim_plugins.engine.layer_decay' in sys.modules]))
'''], cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env=dict(run_env(), PYTHONPATH=ROOT))
    assert check.returncode == 0, check.stderr[-3000:]
    assert json.loads(check.stdout.strip().splitlines()[-1]) == ['1.2.2', [2, 10, 28, 28], True]
