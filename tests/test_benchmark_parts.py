"""``tools/benchmark.py parts`` (SemMAE stage 1's cost): the setting is the paper's, the three
steps compute what the stage-1 tools compute, and the report's numbers hang together (never
speed: no timing thresholds)."""
import json
import math

import pytest
import torch

PARTS_CFG = 'configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py'
# A 2-layer, 32-d ViT on 32x32 images with 8x8 patches: a 4x4 token grid
TINY_SPEC = dict(config=PARTS_CFG, arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                                             feedforward_channels=64),
                 img_size=32, patch_size=8, num_parts=3)
CUDA = pytest.param('cuda', marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason='no CUDA GPU visible: run `pytest -m cuda` on one')])


def opts(batch_size: int = 2, device: str = 'cpu') -> dict:
    return dict(device=device, amp=False, batch_size=batch_size, warmup=0, steps=1, rounds=1,
                threads=torch.get_num_threads(), peak_flops=1e12)


def test_the_default_setting_is_the_papers():
    """ViT-B/16 (random weights, no checkpoint to load), 224x224, N = 7, the decoder upsampled
    back to 224 (4 doublings of the 14x14 grid); the rest is the learner config's own."""
    from mim_plugins.benchmark.measure import load_config
    from mim_plugins.benchmark.parts import learner_config
    from mim_plugins.benchmark.parts_cli import parse_args
    args = parse_args([])
    cfg = learner_config(args.config, args.arch, args.img_size, args.patch_size, args.num_parts)
    plain = load_config(PARTS_CFG)
    assert args.config == PARTS_CFG
    backbone = cfg.model.backbone
    assert (backbone.arch, backbone.img_size, backbone.patch_size) == ('b', 224, 16)
    assert backbone.init_cfg is None and backbone.out_type == 'raw'
    assert cfg.model.num_parts == 7 and cfg.model.decoder.num_upsamples == 4
    assert cfg.model.decoder.channels == plain.model.decoder.channels
    assert cfg.model.attention == plain.model.attention
    assert cfg.optim_wrapper == plain.optim_wrapper
    assert cfg.train_dataloader.dataset.pipeline[1].scale == (224, 224)


def test_the_decoder_reconstructs_at_the_input_size():
    from mmengine.registry import MODELS, init_default_scope

    from mim_plugins.benchmark.parts import learner_config
    init_default_scope('mmpretrain')
    learner = MODELS.build(learner_config(**TINY_SPEC).model)
    maps, cls_token = learner.attention_maps(torch.randn(2, 3, 32, 32))
    assert maps.shape == (2, 3, 4, 4)
    assert learner.decoder(maps, cls_token).shape == (2, 3, 32, 32)


def test_the_inference_steps_give_part_maps(tmp_path):
    """Both inferences end as the tools' do: (B, h, w) uint8 part ids below N, on the CPU."""
    from mim_plugins.benchmark.parts import build_phase, learner_config
    cfg = learner_config(**TINY_SPEC)
    for name in ('learned', 'kmeans'):
        ids = build_phase(name, cfg, str(tmp_path), opts(batch_size=3))()
        assert ids.shape == (3, 4, 4) and ids.dtype == 'uint8' and ids.max() < 3, name


def test_the_training_step_trains_the_learner_only(tmp_path):
    from mim_plugins.benchmark.parts import build_phase, learner_config
    step = build_phase('train', learner_config(**TINY_SPEC), str(tmp_path), opts())
    before = {k: v.clone() for k, v in step.model.state_dict().items()}
    step.time(1)
    after = step.model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(not k.startswith('backbone.') for k in moved)
    assert any(k.startswith('decoder.') for k in moved) and any(k.startswith('embed.')
                                                                 for k in moved)


def test_flops_per_step_double_with_the_batch(tmp_path):
    """Per image the FLOPs do not depend on the batch; training costs more than the learned
    inference, which costs a little more than k-means' (the part-token embedding and the
    blur on top of the same ViT and a product of the same size)."""
    from mim_plugins.benchmark.parts import PHASES, build_phase, learner_config
    cfg = learner_config(**TINY_SPEC)
    flops = {size: [build_phase(name, cfg, str(tmp_path / f'{name}{size}'),
                                opts(batch_size=size)).flops() for name in PHASES]
             for size in (1, 2)}
    assert [2 * f for f in flops[1]] == flops[2]
    train, learned, kmeans = flops[1]
    assert train > learned > kmeans > 0


@pytest.mark.parametrize('device', ['cpu', CUDA])
def test_memory_of_each_step(device):
    from mim_plugins.benchmark.parts import PHASES, phase_memory
    for name in PHASES:
        memory = phase_memory(TINY_SPEC, name, opts(device=device))
        assert memory['peak_rss_mib'] > 0
        assert (memory['cuda_peak_mib'] or 0) > 0 if device == 'cuda' else \
            memory['cuda_peak_mib'] is None


def test_cli_prints_and_writes_every_field(tmp_path, capsys):
    from mim_plugins.benchmark.parts_cli import main
    out = tmp_path / 'parts.json'
    report = main(['--arch', 'embed_dims=32,num_layers=2,num_heads=2,feedforward_channels=64',
                   '--img-size', '32', '--patch-size', '8', '--num-parts', '3',
                   '--batch-size', '2', '--warmup', '0', '--steps', '1', '--rounds', '1',
                   '--peak-size', '256', '--in-process', '--json', str(out)])
    printed = capsys.readouterr().out
    assert '| stage 1 | batch | ms/img | img/s | GFLOP/img |' in printed
    for what in ('learner training step', 'learned inference', 'k-means inference'):
        assert f'| {what} | 2 |' in printed
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report['setting'] == TINY_SPEC and report['matmul_peak_tflops'] > 0
    for row in report['results']:
        assert all(row[k] > 0 for k in ('step_ms', 'ms_per_img', 'img_s', 'gflop_per_img',
                                        'tflop_s', 'peak_fraction', 'peak_rss_mib')), row
        assert math.isclose(row['ms_per_img'] * 2, row['step_ms'], rel_tol=1e-9)
        assert math.isclose(row['img_s'], 1e3 / row['ms_per_img'], rel_tol=1e-9)
        assert math.isclose(row['peak_fraction'],
                            row['tflop_s'] / report['matmul_peak_tflops'], rel_tol=1e-9)
        assert row['cuda_peak_mib'] is None


def test_bad_settings_are_clear_errors():
    from mim_plugins.benchmark.parts import learner_config
    from mim_plugins.benchmark.parts_cli import parse_args
    from mim_plugins.utils.errors import UserInputError
    with pytest.raises(UserInputError, match='power of two'):
        learner_config(**dict(TINY_SPEC, patch_size=12, img_size=36))
    with pytest.raises(UserInputError, match='not a SemMAEPartLearner'):
        learner_config(**dict(TINY_SPEC, config='configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_'
                              'mnist5k.py'))
    with pytest.raises(UserInputError, match='multiple of --patch-size'):
        parse_args(['--img-size', '30', '--patch-size', '8'])
    with pytest.raises(UserInputError, match='>= 1'):
        parse_args(['--steps', '0'])
    with pytest.raises(UserInputError, match='>= 1'):
        parse_args(['--patch-size', '0'])
    with pytest.raises(SystemExit):  # argparse: the arch is neither a name nor key=int pairs
        parse_args(['--arch', 'embed_dims=wide'])
