"""tools/gpu_check.sh, everything about it that a machine without a GPU can check: its install
from the carried wheelhouse into an environment shaped like the GPU machine's (torch there, the
OpenMMLab stack not, no index), ``--amp``'s dtype choice, the report's format, and a smoke run
of the whole script on CPU (bf16 autocast on CPU)."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata

import pytest
import torch

from conftest import ROOT, run_env

TINY = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
SEMMAE_TINY = 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
WHEELHOUSE = osp.join(ROOT, 'wheelhouse')
# The GPU machine's preinstalled packages (the device README's list, 2026-11-17): what the
# simulated machine below takes from this environment. setuptools is left out on purpose: its
# 3.12 venv has none, and setuptools >= 81 has no pkg_resources, so the carried one must do.
DEVICE_PACKAGES = set('''
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cycler
cython einops etils execnet filelock flatbuffers fonttools frozenlist fsspec grpcio h11 h5py
hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig jax jaxlib
jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities llvmlite lxml
markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpmath msgpack multidict
mypy-extensions nanobind narwhals networkx ninja numba numpy onnx onnxruntime opencv-python
opencv-python-headless packaging pandas pathspec patsy pillow pip pluggy portalocker
prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks python-dateutil pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist pytz pyyaml regex requests rich safetensors scikit-image scikit-learn scipy seaborn
sentencepiece shellingham simplejson six sortedcontainers statsmodels sympy tabulate
tensorboard threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio torchvision
tqdm transformers triton typer typing-extensions tzdata urllib3 wheel wrapt xxhash yarl zipp
'''.split())


def canonical(name: str) -> str:
    return name.lower().replace('_', '-').replace('.', '-')


def device_like_site(dest: str) -> int:
    """A folder of links to this environment's copies of the GPU machine's packages (and the
    CUDA libraries torch loads), nothing else; returns how many distributions it holds."""
    os.makedirs(dest)
    site = sysconfig.get_paths()['purelib']
    count = 0
    for dist in metadata.distributions(path=[site]):
        name = canonical(dist.metadata['Name'])
        if name not in DEVICE_PACKAGES and not name.startswith(('nvidia-', 'cuda-')):
            continue
        count += 1
        tops = {str(f).split('/')[0] for f in dist.files or [] if not str(f).startswith('..')}
        for top in tops:
            if not osp.exists(osp.join(dest, top)) and osp.exists(osp.join(site, top)):
                os.symlink(osp.join(site, top), osp.join(dest, top))
    return count


@pytest.fixture(scope='module')
def device_venv(tmp_path_factory):
    """A fresh venv without setuptools that sees only the device-like packages: the Python of
    a GPU machine with torch preinstalled, before the wheelhouse is installed."""
    if not osp.isdir(WHEELHOUSE) or not any(f.endswith('.whl') for f in os.listdir(WHEELHOUSE)):
        pytest.skip('no wheelhouse/ here: run `bash tools/build_wheelhouse.sh` first (needs the '
                    'package registry), then this test installs from it')
    root = tmp_path_factory.mktemp('device')
    venv = root / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=300)
    python = str(venv / 'bin' / 'python')
    subprocess.run([python, '-m', 'pip', 'uninstall', '-q', '-y', 'setuptools'], check=True,
                   timeout=300)
    assert device_like_site(str(root / 'image')) > 20
    venv_site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
                                '["purelib"])'], capture_output=True, text=True,
                               check=True).stdout.strip()
    with open(osp.join(venv_site, 'device_image.pth'), 'w') as f:
        f.write(str(root / 'image') + '\n')
    return python, root


def device_env(python: str, root, wheelhouse: str = WHEELHOUSE) -> dict:
    env = dict(os.environ, PYTHON=python, SITE=str(root / 'site'), WHEELHOUSE=wheelhouse,
               OUT=str(root / 'out'), OMP_NUM_THREADS='1')
    for key in ('PYTHONPATH', 'VIRTUAL_ENV', 'PIP_FIND_LINKS', 'PIP_EXTRA_INDEX_URL'):
        env.pop(key, None)
    env['PIP_CONFIG_FILE'] = os.devnull  # no index, no find-links: only the wheelhouse
    return env


@pytest.mark.slow
def test_install_from_the_wheelhouse_on_a_device_like_python(device_venv):
    """The script's install step, offline (``--no-index``): the stack imports, every ViT-B/16
    config loads, and the setuptools wheel (pkg_resources) goes in only because this Python has
    none; then one CPU step of the demo MAE runs on the installed packages alone."""
    python, root = device_venv
    check = subprocess.run([python, '-c', 'import torch, mmengine'], capture_output=True,
                           text=True, env=device_env(python, root))
    assert 'No module named \'mmengine\'' in check.stderr  # before: torch yes, OpenMMLab no
    result = subprocess.run(['bash', 'tools/gpu_check.sh', '--install-only'], cwd=ROOT,
                            env=device_env(python, root), capture_output=True, text=True,
                            timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    wheels = len([f for f in os.listdir(WHEELHOUSE) if f.endswith('.whl')])
    assert f'installing {wheels} wheels' in log  # setuptools included: no pkg_resources here
    assert 'mmengine 0.10.7, mmcv 2.1.0, mmpretrain 1.2.0, 10 configs load' in log
    env = device_env(python, root)
    env['PYTHONPATH'] = f"{root / 'site'}:{ROOT}"
    step = subprocess.run(
        [python, 'tools/gpu_check.py', TINY, '--device', 'cpu', '--steps', '1', '--warmup', '0',
         '--batch-size', '2', '--pipeline-images', '0', '--no-compile', '--peak-size', '128',
         '--out', str(root / 'step')], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600)
    assert step.returncode == 0, (step.stdout + step.stderr)[-3000:]
    (entry,) = json.loads((root / 'step' / 'gpu_check.json').read_text())['configs']
    assert entry['losses']['finite'] and entry['amp_dtype'] == 'bfloat16'


@pytest.mark.slow
def test_a_missing_wheel_is_named_before_any_gpu_time(device_venv, tmp_path):
    """Without addict (mmengine needs it, the GPU image lacks it) the preflight stops with
    status 2 and names it, and what to do."""
    python, root = device_venv
    partial = tmp_path / 'wheelhouse'
    partial.mkdir()
    for name in os.listdir(WHEELHOUSE):
        if not name.startswith('addict-'):
            shutil.copy(osp.join(WHEELHOUSE, name), partial / name)
    env = device_env(python, root, str(partial))
    env['SITE'] = str(tmp_path / 'site')
    result = subprocess.run(['bash', 'tools/gpu_check.sh', '--install-only'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert "No module named 'addict'" in result.stderr
    assert 'add the missing package\'s wheel to WHEELS in tools/build_wheelhouse.sh' in \
        result.stderr


@pytest.mark.parametrize('native_bf16', [True, False])
def test_amp_picks_bf16_where_the_gpu_has_it_else_fp16_with_loss_scaling(monkeypatch,
                                                                         native_bf16):
    """``--amp`` (tools/train.py) and the benchmark's amp: bf16 on a GPU with native bf16 (no
    loss scaling), fp16 with dynamic loss scaling where bf16 is only emulated; said in the log."""
    from mim_plugins.apis import common
    from mim_plugins.benchmark.measure import load_config
    from mim_plugins.benchmark.step import step_amp_dtype

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native_bf16 or including_emulation  # an older GPU emulates bf16

    logged = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', is_bf16_supported)
    monkeypatch.setattr(common, 'print_log', lambda msg, logger=None: logged.append(msg))
    cfg = load_config(TINY)
    dtype = common.set_amp(cfg, True)
    want = torch.bfloat16 if native_bf16 else torch.float16
    assert dtype == want and common.amp_dtype() == want
    assert step_amp_dtype(torch.device('cuda')) == want
    assert step_amp_dtype(torch.device('cpu')) == torch.bfloat16
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper' and wrapper.dtype == str(want)[6:]
    assert wrapper.loss_scale == (1.0 if native_bf16 else 'dynamic')
    assert logged == [f"--amp: {str(want)[6:]} autocast "
                      f"({'native' if native_bf16 else 'no native'} bf16 on this GPU), loss "
                      f"scale {wrapper.loss_scale}"]
    assert wrapper.optimizer.type == 'AdamW'  # the rest of the config is kept
    assert common.set_amp(load_config(TINY), False) is None


def test_amp_without_a_gpu_is_refused(monkeypatch):
    from mim_plugins.apis.common import set_amp
    from mim_plugins.benchmark.measure import load_config
    from mim_plugins.utils.errors import UserInputError
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(UserInputError, match='--amp needs a CUDA GPU'):
        set_amp(load_config(TINY), True)


JUNIT = '''<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_cuda" name="test_a[cuda]" time="1.0"/>
<testcase classname="tests.test_cuda" name="test_b[cuda]" time="1.0">
<failure message="x"/></testcase>
<testcase classname="tests.test_cuda" name="test_c[cuda]" time="1.0"><error message="y"/></testcase>
<testcase classname="tests.test_cuda" name="test_d[cuda]" time="0.0">
<skipped message="no native bf16"/></testcase></testsuite></testsuites>'''


def test_junit_results_and_what_fails_the_check(tmp_path):
    from mim_plugins.benchmark.gpu import problems_of, read_junit
    path = tmp_path / 'cuda_tests.xml'
    path.write_text(JUNIT)
    tests = read_junit(str(path))
    assert (tests['tests'], tests['passed'], tests['failed'], tests['errors'],
            tests['skipped']) == (4, 1, 1, 1, 1)
    assert tests['failing'] == ['tests.test_cuda::test_b[cuda]', 'tests.test_cuda::test_c[cuda]']
    assert tests['skipped_reasons'] == ['tests.test_cuda::test_d[cuda]: no native bf16']
    good = dict(config='a.py', losses=dict(finite=True), compiled=dict(skipped='budget'))
    assert problems_of(dict(configs=[good], tests=None)) == []
    bad = [good, dict(config='b.py', losses=dict(finite=False)),
           dict(config='c.py', error='OutOfMemoryError: ...'),
           dict(config='d.py', losses=dict(finite=True),
                compiled=dict(error='BackendCompilerFailed'))]
    assert problems_of(dict(configs=bad, tests=tests)) == [
        'b.py: a loss is not finite', 'c.py: OutOfMemoryError: ...',
        'd.py compiled: BackendCompilerFailed',
        'CUDA tests: 1 failed, 1 errors: tests.test_cuda::test_b[cuda], '
        'tests.test_cuda::test_c[cuda]']


@pytest.mark.slow
def test_smoke_run_of_the_script_on_cpu(tmp_path):
    """``tools/gpu_check.sh`` end to end on CPU, in this environment (SKIP_INSTALL; no CUDA
    tests to run here): two demo configs in bf16 autocast, finite losses, the pipeline on two
    processes, compiled runs left out by the budget, and the JSON and text reports."""
    out = tmp_path / 'out'
    env = dict(run_env(), PYTHON=sys.executable, SKIP_INSTALL='1', SKIP_TESTS='1', OUT=str(out))
    result = subprocess.run(
        ['bash', 'tools/gpu_check.sh', TINY, SEMMAE_TINY, '--device', 'cpu', '--steps', '2',
         '--warmup', '1', '--batch-size', '8', '--pipeline-workers', '2', '--pipeline-images',
         '4', '--peak-size', '256', '--budget-s', '0'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert sorted(os.listdir(out)) == ['gpu_check.json', 'gpu_check.log', 'gpu_check.txt']
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['schema'] == 'mim_plugins.gpu_check/1' and report['ok'] and report['complete']
    assert report['machine']['amp_dtype'] == 'bfloat16' and report['peak_dtype'] == 'bfloat16'
    assert report['matmul_peak_tflops'] > 0 and report['problems'] == []
    assert [e['config'] for e in report['configs']] == [TINY, SEMMAE_TINY]
    for entry in report['configs']:
        assert entry['batch_size'] == 8 and entry['amp_dtype'] == 'bfloat16'
        assert entry['losses']['finite'] and entry['losses']['count'] == 3  # warm-up + 2
        eager = entry['eager']
        assert eager['img_s'] == pytest.approx(8 / (eager['step_ms'] / 1e3))
        assert eager['mfu'] == pytest.approx(
            eager['tflop_s'] / report['matmul_peak_tflops'])
        assert eager['tflop_s'] == pytest.approx(entry['gflop_per_img'] * 8 / eager['step_ms'])
        assert entry['optimizer']['foreach_ms'] > 0 and entry['optimizer']['fused_ms'] > 0
        assert entry['compiled']['skipped'].startswith('time budget')
        pipe = report['pipeline']['configs'][entry['config']]
        assert pipe['img_s'] > 0 and pipe['steps_per_s'] == pytest.approx(pipe['img_s'] / 8)
        assert pipe['gpu_steps_per_s'] == pytest.approx(eager['img_s'] / 8)
    assert report['pipeline']['workers'] == 2
    text = (out / 'gpu_check.txt').read_text()
    assert text.startswith('GPU check (mim_plugins.gpu_check/1): OK')
    assert '--amp chose bfloat16 (bf16 autocast on CPU)' in text
    assert '| config | batch | GFLOP/img | eager ms |' in text
    assert '| mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py | 8 |' in text
    assert 'data pipeline on 2 CPU processes at once' in text
    assert 'compiled run of semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py: time budget' in text
    assert 'CUDA tests: not run' in text
    assert text in log  # the text report is also the end of the output


def test_compile_blocks_picks_each_stack_of_alike_blocks(tmp_path):
    """Regional compilation's choice: every block of the encoder's and the decoder's stacks,
    nothing else (compiling is lazy: nothing compiles here)."""
    from mim_plugins.benchmark.measure import build_step
    step = build_step(TINY, str(tmp_path), dict(batch_size=2, device='cpu', amp=False))
    stacks = [step.model.backbone.layers, step.model.neck.decoder_blocks]
    assert step.compile_blocks() == sum(len(s) for s in stacks) > 2
    compiled = [m for m in step.model.modules() if m._compiled_call_impl is not None]
    assert compiled == [block for stack in stacks for block in stack]


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_compiled_runs_are_reported_within_the_budget(tmp_path, monkeypatch):
    """The compiled phase's bookkeeping, with compilation itself left out (the CUDA tests
    check compiled steps against eager ones): timings, speed-up over eager, compile time, the
    graph counters, losses counted in, and a config past the budget left out with the reason."""
    from mim_plugins.benchmark import gpu
    from mim_plugins.benchmark.step import TrainStep
    monkeypatch.setattr(TrainStep, 'compile_blocks', lambda step: 5)
    monkeypatch.setattr(gpu, 'FIRST_COMPILE_S', 25.0)
    ticks = iter(range(0, 1000, 10))  # each look at the clock: 10 s later. The first compiled
    # run starts at 30 s of 60 (>= 25 left) and takes 10 s; the second would start at 70 s.
    report = gpu.main([TINY, SEMMAE_TINY, '--device', 'cpu', '--steps', '2', '--warmup', '1',
                       '--batch-size', '4', '--pipeline-images', '0', '--peak-size', '128',
                       '--budget-s', '60', '--out', str(tmp_path)], clock=lambda: next(ticks))
    first, second = report['configs']
    comp = first['compiled']
    assert comp['blocks'] == 5 and comp['mode'] == 'regional' and comp['losses_finite']
    assert comp['speedup'] == pytest.approx(first['eager']['step_ms'] / comp['step_ms'])
    assert comp['compile_s'] >= 0 and comp['graphs'] == 0 and comp['graph_breaks'] == 0
    assert first['losses']['count'] == 6  # (1 warm-up + 2) eager + the same compiled
    assert second['compiled']['skipped'].startswith('time budget')
    assert second['compiled']['skipped'] == 'time budget: -10 s left, a compiled run takes ~12 s'
    assert report['ok'] and json.loads((tmp_path / 'gpu_check.json').read_text()) == report
