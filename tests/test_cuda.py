"""The code paths with a CUDA branch, checked against a reference: bf16 autocast against fp32,
fused AdamW against foreach, ``torch.compile`` against eager, ``--amp``'s AmpOptimWrapper, the
benchmark's CUDA memory. ``pytest -m cuda`` selects the CUDA cases (tools/gpu_check.sh runs
them on the GPU machine); without a GPU they skip, with the reason (``-rs`` prints it). Where a
check means something on CPU too, its CPU case runs everywhere, so the check itself is tested
on machines without a GPU."""
import copy
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, run_env

TINY = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
SEMMAE_TINY = 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
NO_GPU = 'no CUDA GPU visible: run `pytest -m cuda` (or tools/gpu_check.sh) on a GPU machine'
ON_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)]
CUDA = pytest.param('cuda', marks=ON_CUDA)
DEVICES = ['cpu', CUDA]


def tool_env() -> dict:
    """``run_env()`` that keeps this process's PYTHONPATH too: on the GPU machine the carried
    packages are there (tools/gpu_check.sh installs them into a folder on PYTHONPATH)."""
    env = run_env()
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    return env


def steps_with_the_same_start(tmp_path, path: str, device: str, variants):
    """One ``TrainStep`` per ``variants`` entry (``build_step`` options, e.g. ``amp``) with the
    weights and the batch of the first."""
    from mim_plugins.benchmark.measure import build_step
    steps = []
    for i, options in enumerate(variants):
        step = build_step(path, str(tmp_path / str(i)), dict(batch_size=4, device=device,
                                                             **options))
        if steps:
            step.model.load_state_dict(steps[0].model.state_dict())
            step.batch = steps[0].batch  # the pipeline crops at random
        steps.append(step)
    return steps


def losses_of(step, count: int, seed: int = 1):
    """Total losses of ``count`` training steps, the random masks seeded alike."""
    torch.manual_seed(seed)
    return [step(copy.deepcopy(step.batch))['loss'].item() for _ in range(count)]


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
@pytest.mark.parametrize('device', DEVICES)
def test_bf16_autocast_step_matches_fp32(tmp_path, device):
    """The benchmark's ``--amp`` (``AutocastOptimWrapper``): the encoder's matrix products run
    in bf16, the weights stay fp32 and move, and the losses of two steps agree with fp32 to
    bf16's precision (2^-8 relative per rounding; 1% allows for the accumulation)."""
    fp32, amp = steps_with_the_same_start(tmp_path, TINY, device, [dict(amp=False),
                                                                   dict(amp=True)])
    if device == 'cuda' and amp.amp_dtype != torch.bfloat16:
        pytest.skip(f'{torch.cuda.get_device_name()} has no native bf16 (--amp uses fp16 there)')
    dtypes = []
    qkv = amp.model.backbone.layers[0].attn.qkv
    qkv.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    before = qkv.weight.detach().clone()
    reference, mixed = losses_of(fp32, 2), losses_of(amp, 2)
    assert dtypes == [torch.bfloat16] * 2 and qkv.weight.dtype == torch.float32
    assert not torch.equal(qkv.weight.detach(), before)
    assert all(math.isfinite(x) for x in reference + mixed), (reference, mixed)
    for ref, got in zip(reference, mixed):
        assert math.isclose(got, ref, rel_tol=1e-2), (reference, mixed)
    assert reference != mixed  # bf16 really ran: the two precisions round differently


@pytest.mark.parametrize('device', DEVICES)
def test_fused_adamw_takes_the_steps_foreach_takes(tmp_path, device):
    """AdamW with ``fused=True`` (one kernel) and ``foreach=True`` (one kernel per op over the
    tensor list), as the GPU check times them: from the same weights, on the same gradients,
    three updates give the same weights to float32 rounding, and they moved."""
    from mim_plugins.benchmark.measure import build_step
    step = build_step(TINY, str(tmp_path), dict(batch_size=2, device=device, amp=False))
    start = copy.deepcopy(step.model.state_dict())
    names, params = zip(*[(n, p) for n, p in step.model.named_parameters() if p.requires_grad])
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=generator).to(p.device) for p in params]
    results = {}
    for kind in ('foreach', 'fused'):
        step.model.load_state_dict(start)
        step.rebuild_optimizer(**{kind: True})
        assert step.optim_wrapper.optimizer.defaults[kind] is True
        for _ in range(3):
            for param, grad in zip(params, grads):
                param.grad = grad.clone()
            step.optim_wrapper.step()
        results[kind] = [p.detach().clone() for p in params]
    assert all(not torch.equal(after, start[name]) for name, after in zip(names, results['fused']))
    for foreach, fused in zip(results['foreach'], results['fused']):
        torch.testing.assert_close(fused, foreach, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('device', [CUDA])
@pytest.mark.parametrize('how', ['compile', 'compile_blocks'])
def test_compile_takes_the_steps_eager_takes_on_cuda(tmp_path, device, how):
    """``TrainStep.compile`` (the children) and ``compile_blocks`` (each transformer block, as
    the GPU check times it) on the GPU, inductor's Triton kernels (the CPU case of the first is
    in test_benchmark.py): two steps of the compiled SemMAE give the eager losses. SemMAE: its
    masks come from the data preprocessor, outside the compiled modules, so both runs see the
    same masks. Tolerance: cuDNN's convolution may differ between the two (TF32)."""
    torch._dynamo.reset()
    eager, compiled = steps_with_the_same_start(tmp_path, SEMMAE_TINY, device,
                                                [dict(amp=False), dict(amp=False)])
    getattr(compiled, how)()
    reference, got = losses_of(eager, 2), losses_of(compiled, 2)
    assert all(math.isfinite(x) for x in reference) and reference[0] != reference[1]
    for ref, value in zip(reference, got):
        assert math.isclose(value, ref, rel_tol=1e-3), (reference, got)


@pytest.mark.parametrize('device', [CUDA])
def test_set_amp_builds_a_bf16_amp_wrapper_that_trains(tmp_path, device):
    """``--amp`` of tools/train.py on a GPU with native bf16: mmengine's AmpOptimWrapper in
    bf16 with a static loss scale of 1 (none), whose step gives a finite loss."""
    from mmengine.optim import AmpOptimWrapper, build_optim_wrapper

    from mim_plugins.apis.common import set_amp
    from mim_plugins.benchmark.measure import build_step, load_config
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip(f'{torch.cuda.get_device_name()} has no native bf16')
    cfg = load_config(TINY)
    assert set_amp(cfg, True) == torch.bfloat16
    step = build_step(TINY, str(tmp_path), dict(batch_size=4, device=device, amp=False))
    step.optim_wrapper = build_optim_wrapper(step.model, cfg.optim_wrapper)
    assert isinstance(step.optim_wrapper, AmpOptimWrapper)
    assert step.optim_wrapper.cast_dtype == torch.bfloat16
    loss = step(copy.deepcopy(step.batch))['loss']
    assert torch.isfinite(loss) and step.optim_wrapper.loss_scaler.get_scale() == 1.0


@pytest.mark.parametrize('device', [CUDA])
def test_train_tool_with_amp_trains_and_says_bf16(tmp_path, tiny_data, device):
    """The counterpart of test_errors.py's CPU refusal: ``tools/train.py --amp`` on a GPU
    trains two iterations, names the dtype it chose, and saves a checkpoint."""
    result = subprocess.run(
        [sys.executable, 'tools/train.py', TINY, '--amp', '--work-dir', str(tmp_path),
         '--cfg-options', f'train_dataloader.dataset.data_root={tiny_data}',
         'train_dataloader.batch_size=10', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
         'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=1'],
        cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    dtype = 'bfloat16' if torch.cuda.is_bf16_supported(including_emulation=False) else 'float16'
    assert f'--amp: {dtype} autocast' in log and 'Epoch(train) [1][2/2]' in log
    assert (tmp_path / 'epoch_1.pth').is_file()


@pytest.mark.parametrize('device', [CUDA])
def test_benchmark_reports_cuda_memory(tmp_path, device):
    """The benchmark's CUDA branch: a step on the GPU reports its CUDA memory peak, at least
    the model's weights, gradients and AdamW's two moments (4 fp32 copies)."""
    from mim_plugins.benchmark.measure import measure_config
    opts = dict(batch_size=4, device=device, amp=True, compile=False, warmup=1, steps=2,
                pipeline_images=0, threads=torch.get_num_threads(), peak_flops=1e12)
    result = measure_config(TINY, opts)
    from mim_plugins.benchmark.measure import build_step
    params = sum(p.numel() for p in build_step(TINY, str(tmp_path), dict(
        batch_size=1, device='cpu', amp=False)).model.parameters())
    assert result['cuda_peak_mib'] >= 4 * 4 * params / 2**20
    assert result['img_s'] > 0 and result['device'] == device


@pytest.mark.parametrize('device', [CUDA])
def test_hog_targets_under_bf16_autocast_on_cuda(device):
    """MaskFeat's targets (mmpretrain's HOGGenerator) inside the GPU check's bf16 autocast. On
    CUDA, autocast runs ``norm`` in fp32, so the scatter into the fp32 histogram works; on CPU
    it does not (bf16 source: 'scatter(): Expected self.dtype to be equal to src.dtype'). The
    gradients and phases are bf16, which moves pixels near a bin edge to the next bin: 6.5%
    relative L2 against fp32 on this noise when emulated on CPU; 10% allowed."""
    from mmpretrain.models.selfsup.maskfeat import HOGGenerator
    hog = HOGGenerator().to(device)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    reference = hog(x)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        got = hog(x)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert ((got - reference).norm() / reference.norm()).item() < 0.1
