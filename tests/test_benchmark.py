"""tools/benchmark.py runs end to end on the demo config and reports every field (never speed);
``--amp`` and ``--compile`` train as they should."""
import copy
import json
import math
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_env

TINY = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
SEMMAE_TINY = 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FIELDS = ('config', 'batch_size', 'step_ms', 'img_s', 'gflop_per_step', 'gflop_per_img',
          'tflop_s', 'peak_fraction', 'optimizer_ms', 'peak_rss_mib', 'pipeline_img_s')


@pytest.mark.slow
def test_cli_reports_every_field_and_the_side_by_side_ratio(tmp_path):
    out = tmp_path / 'bench.json'
    result = subprocess.run(
        [sys.executable, 'tools/benchmark.py', SEMMAE_TINY, '--batch-size', '4', '--warmup', '1',
         '--steps', '2', '--rounds', '1', '--pipeline-images', '4', '--compare',
         f'{TINY}={TINY}', '--json', str(out)],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| config | batch | step ms | img/s |' in result.stdout
    assert '| ours | stock |' in result.stdout
    report = json.loads(out.read_text())
    assert report['matmul_peak_tflops'] > 0 and report['options']['batch_size'] == 4
    (row,) = report['results']
    assert row['config'] == SEMMAE_TINY and row['batch_size'] == 4
    assert all(isinstance(row[k], (int, float)) and row[k] > 0 for k in FIELDS[1:]), row
    # the derived numbers are consistent with the measured ones
    assert math.isclose(row['img_s'], 4 / (row['step_ms'] / 1e3), rel_tol=1e-6)
    assert math.isclose(row['tflop_s'], row['gflop_per_step'] / row['step_ms'], rel_tol=1e-6)
    assert math.isclose(row['peak_fraction'], row['tflop_s'] / report['matmul_peak_tflops'],
                        rel_tol=1e-6)
    assert row['cuda_peak_mib'] is None and row['device'] == 'cpu'
    (pair,) = report['comparisons']
    assert pair['ours'] == pair['stock'] == TINY and pair['ratio'] > 0
    assert pair['ours_gflop_per_img'] == pair['stock_gflop_per_img'] > 0  # the same work
    assert row['optimizer_ms'] < row['step_ms']  # the update is one part of the step


def test_comparison_rounds_alternate_which_goes_first(monkeypatch):
    from mim_plugins.benchmark import measure
    from mim_plugins.benchmark.step import TrainStep
    order = []
    real_time = TrainStep.time

    def logged_time(step, steps):
        order.append(step.name)
        return real_time(step, steps)

    real_build = measure.build_step

    def named_build(path, root, opts):
        step = real_build(path, root, opts)
        step.name = 'ours' if root.endswith('0') else 'stock'
        return step

    monkeypatch.setattr(TrainStep, 'time', logged_time)
    monkeypatch.setattr(measure, 'build_step', named_build)
    opts = dict(batch_size=2, device='cpu', amp=False, compile=False, warmup=1, steps=1,
                rounds=3, threads=torch.get_num_threads())
    result = measure.compare(TINY, f'{TINY}@model.neck.decoder_depth=1', opts)
    assert order == ['ours', 'stock'] + ['ours', 'stock', 'stock', 'ours', 'ours', 'stock']
    assert result['ours_gflop_per_img'] > result['stock_gflop_per_img']  # a shallower decoder


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_amp_runs_the_forward_pass_in_bf16_on_cpu(tmp_path):
    from mim_plugins.benchmark.measure import build_step
    opts = dict(batch_size=2, device='cpu', amp=True)
    step = build_step(TINY, str(tmp_path), opts)
    dtypes = []
    qkv = step.model.backbone.layers[0].attn.qkv  # a Linear: bf16 under autocast
    qkv.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    before = qkv.weight.detach().clone()
    log_vars = step(step.batch)
    assert dtypes == [torch.bfloat16] and torch.isfinite(log_vars['loss'])
    assert qkv.weight.dtype == torch.float32 and not torch.equal(qkv.weight, before)  # fp32 update
    assert step.flops() > 0


@pytest.mark.slow
def test_compile_takes_the_same_steps_as_the_eager_model(tmp_path):
    """``--compile`` (``TrainStep.compile``): the compiled backbone, neck and head give the eager
    model's losses over two steps, so the same forward pass and the same update. SemMAE, whose
    masks the data preprocessor draws outside the compiled modules, so both models see the same
    masks. (~1 min: compiling on 2 cores.)"""
    from mim_plugins.benchmark.measure import build_step
    opts = dict(batch_size=2, device='cpu', amp=False)
    steps = [build_step(SEMMAE_TINY, str(tmp_path / name), opts) for name in ('eager', 'compiled')]
    eager, compiled = steps
    compiled.model.load_state_dict(eager.model.state_dict())  # the same weights,
    compiled.batch = eager.batch  # and the same images (the pipeline crops at random)
    compiled.compile()
    assert all(callable(getattr(getattr(compiled.model, n), '_orig_mod', None))
               for n in ('backbone', 'neck', 'head'))
    losses = [[], []]
    for i, step in enumerate(steps):
        torch.manual_seed(1)  # the same masks
        for _ in range(2):
            losses[i].append(step(copy.deepcopy(step.batch))['loss'].item())
    assert all(math.isfinite(x) for x in losses[0]) and losses[0][1] != losses[0][0], losses
    for ours, theirs in zip(*losses):
        assert math.isclose(ours, theirs, rel_tol=1e-4), losses


def test_bad_options_are_clear_errors():
    from mim_plugins.benchmark.cli import parse_args
    from mim_plugins.utils.errors import UserInputError
    with pytest.raises(UserInputError, match='OURS=STOCK'):
        parse_args([TINY, '--compare', TINY])
    with pytest.raises(UserInputError, match='only STOCK'):
        parse_args([TINY, '--compare', f'{TINY}@model.neck.decoder_depth=1={TINY}'])
    pairs = parse_args([TINY]).compare  # the defaults pass, overrides on the STOCK side
    assert any('@' in p for p in pairs)
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match='no CUDA GPU'):
            parse_args([TINY, '--device', 'cuda'])


def test_config_overrides_after_at_sign():
    from mim_plugins.benchmark.measure import load_config
    from mim_plugins.utils.errors import UserInputError
    plain = load_config(TINY)
    cfg = load_config(f'{TINY}@model.neck.decoder_depth=1,model.backbone.mask_ratio=0.5')
    assert plain.model.neck.decoder_depth != 1
    assert cfg.model.neck.decoder_depth == 1 and cfg.model.backbone.mask_ratio == 0.5
    with pytest.raises(UserInputError, match='key=value'):
        load_config(f'{TINY}@model.neck.decoder_depth')
