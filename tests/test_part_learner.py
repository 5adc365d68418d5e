"""SemMAE stage 1, the learned part learner (Figure 1): each module against a direct
computation, maps that follow the image, losses that fall, a ViT that stays frozen, and the
config trained and resumed through tools/train.py."""
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.registry import MODELS

from conftest import ROOT, run_env
from mim_plugins.parts import (AdaINDecoder, PartAttention, PartTokenEmbed, SemMAEPartLearner,
                               adain, blur_maps, diversity_loss, normalise_maps,
                               part_attention_logits, reconstruction_loss)

ARCH = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)
CONFIG = 'configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py'


def tiny_learner(**kwargs) -> SemMAEPartLearner:
    torch.manual_seed(0)
    cfg = dict(type='SemMAEPartLearner', num_parts=4,
               backbone=dict(type='VisionTransformer', arch=ARCH, img_size=16, patch_size=4,
                             out_type='raw'),
               decoder=dict(channels=16, num_upsamples=2, mapping_layers=1))
    cfg.update(kwargs)
    return MODELS.build(cfg)


# ------------------------------------------------------------------ modules, against direct maths

def test_attention_logits_are_the_scaled_part_patch_products():
    gen = torch.Generator().manual_seed(0)
    parts, patches = torch.randn(2, 3, 8, generator=gen), torch.randn(2, 5, 8, generator=gen)
    logits = part_attention_logits(parts, patches)
    assert logits.shape == (2, 3, 5)
    for b in range(2):
        for n in range(3):
            for p in range(5):
                direct = sum(parts[b, n, c] * patches[b, p, c] for c in range(8)) / math.sqrt(8)
                assert torch.isclose(logits[b, n, p], direct, atol=1e-5)


def test_normalisations_sum_to_one_over_parts_or_space():
    logits = torch.randn(2, 3, 6)
    by_parts = normalise_maps(logits, 'parts', temperature=0.5)
    torch.testing.assert_close(by_parts.sum(1), torch.ones(2, 6))
    torch.testing.assert_close(by_parts, (logits / 0.5).exp() / (logits / 0.5).exp().sum(1, True))
    torch.testing.assert_close(normalise_maps(logits, 'space').sum(2), torch.ones(2, 3))
    with pytest.raises(ValueError, match='normalisation'):
        normalise_maps(logits, 'pixels')


def test_blur_is_a_gaussian_convolution_with_replicated_borders():
    maps = torch.rand(2, 3, 7, 9)
    sigma = 0.8
    r = math.ceil(2 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k1 = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k2 = torch.outer(k1, k1) / k1.sum() ** 2  # the separable kernel as one 2-D kernel
    padded = F.pad(maps.view(6, 1, 7, 9), (r, r, r, r), mode='replicate')
    direct = F.conv2d(padded, k2.view(1, 1, 2 * r + 1, 2 * r + 1)).view(2, 3, 7, 9)
    torch.testing.assert_close(blur_maps(maps, sigma), direct)
    assert torch.equal(blur_maps(maps, 0), maps)
    # A constant map stays constant (the kernel sums to 1, borders replicate).
    torch.testing.assert_close(blur_maps(torch.full((1, 1, 5, 5), 0.3), 1.0),
                               torch.full((1, 1, 5, 5), 0.3))


def test_part_tokens_are_a_linear_map_of_the_class_token_plus_a_query_per_part():
    embed = PartTokenEmbed(embed_dims=6, num_parts=3)
    cls = torch.randn(2, 6)
    tokens = embed(cls)
    w, b = embed.proj.weight.view(3, 6, 6), embed.proj.bias.view(3, 6)
    for n in range(3):
        torch.testing.assert_close(tokens[:, n], cls @ w[n].T + b[n] + embed.queries[n])
    assert not torch.allclose(embed(cls + 1), tokens)  # the tokens follow the class token


def test_part_attention_module_is_product_normalise_blur():
    attention = PartAttention(normalisation='parts', temperature=2.0, blur_sigma=0.7)
    parts, patches = torch.randn(2, 4, 8), torch.randn(2, 12, 8)
    maps = attention(parts, patches, (3, 4))
    direct = blur_maps(normalise_maps(part_attention_logits(parts, patches), 'parts', 2.0)
                       .view(2, 4, 3, 4), 0.7)
    torch.testing.assert_close(maps, direct)


def test_adain_sets_each_channels_statistics_to_the_style():
    x = torch.randn(2, 3, 5, 5) * 4 + 2
    scale, bias = torch.randn(2, 3), torch.randn(2, 3)
    y = adain(x, scale, bias)
    torch.testing.assert_close(y.mean((2, 3)), bias, atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std((2, 3), unbiased=False), (1 + scale).abs(), atol=1e-3,
                               rtol=0)


def test_decoder_output_size_and_both_inputs_matter():
    torch.manual_seed(0)
    decoder = AdaINDecoder(num_parts=4, style_dims=8, channels=8, num_upsamples=2)
    maps, style = torch.rand(2, 4, 3, 5), torch.randn(2, 8)
    out = decoder(maps, style)
    assert out.shape == (2, 3, 12, 20)
    assert not torch.allclose(decoder(maps, style + 1), out)  # the style (class token) counts
    assert not torch.allclose(decoder(maps.flip(-1), style), out)  # and where the parts are


def test_diversity_loss_is_the_mean_pairwise_cosine_of_the_maps():
    disjoint = F.one_hot(torch.arange(4) % 2, 2).T.reshape(1, 2, 2, 2).float()
    assert diversity_loss(disjoint).item() == 0
    same = torch.rand(1, 1, 3, 3).repeat(2, 3, 1, 1)
    torch.testing.assert_close(diversity_loss(same), torch.tensor(1.))
    maps = torch.rand(2, 3, 4, 4)
    total = 0.
    for b in range(2):
        for i in range(3):
            for j in range(3):
                if i != j:
                    total += F.cosine_similarity(maps[b, i].flatten(), maps[b, j].flatten(), 0)
    torch.testing.assert_close(diversity_loss(maps), total / (2 * 6))


def test_reconstruction_loss_against_the_area_averaged_image():
    pred, image = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8)
    target = image.view(2, 3, 4, 2, 4, 2).mean((3, 5))
    torch.testing.assert_close(reconstruction_loss(pred, image), ((pred - target) ** 2).mean())
    torch.testing.assert_close(reconstruction_loss(pred, image, 'l1'),
                               (pred - target).abs().mean())


# ---------------------------------------------------------------------------- the whole learner

def test_maps_change_with_the_image_and_parts_are_their_argmax():
    model = tiny_learner().eval()
    images = torch.randn(3, 3, 16, 16)
    maps = model(images)
    assert maps.shape == (3, 4, 4, 4)
    torch.testing.assert_close(maps.sum(1), torch.ones(3, 4, 4))
    assert torch.equal(model(images, mode='predict'), maps.argmax(1))
    assert torch.equal(model.segment(images), maps.argmax(1))
    other = model(images.flip(-1))
    assert not torch.allclose(other, maps)
    assert model.segment(images, grid=(2, 2)).shape == (3, 2, 2)


def test_losses_fall_on_a_fixed_batch_and_the_vit_stays_frozen():
    model = tiny_learner(diversity_weight=0.5).train()
    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    assert not model.backbone.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 16, 16, generator=gen)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    first = None
    for _ in range(60):
        losses = model(images, mode='loss')
        if first is None:
            first = {k: v.item() for k, v in losses.items()}
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
    last = {k: v.item() for k, v in model(images, mode='loss').items()}
    assert last['loss_rec'] < 0.7 * first['loss_rec'], (first, last)
    assert last['loss_div'] < first['loss_div'], (first, last)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, frozen[k]), k
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.embed.proj.weight.grad is not None and model.decoder.to_rgb.weight.grad is not None


def test_the_frozen_vit_loads_any_mmpretrain_vit_checkpoint(tmp_path):
    torch.manual_seed(3)
    vit = VisionTransformer(arch=ARCH, img_size=16, patch_size=4)
    ckpt = str(tmp_path / 'vit.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in vit.state_dict().items()}}, ckpt)
    model = tiny_learner(backbone=dict(
        type='VisionTransformer', arch=ARCH, img_size=16, patch_size=4, out_type='raw',
        init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')))
    model.init_weights()
    for k, v in vit.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[k], v)


def test_a_backbone_without_raw_tokens_is_refused():
    with pytest.raises(ValueError, match="out_type='raw'"):
        tiny_learner(backbone=dict(type='VisionTransformer', arch=ARCH, img_size=16,
                                   patch_size=4))


# ------------------------------------------------------------------------ the config, the Runner

def save_demo_vit(path: str) -> str:
    """A random ViT of the demo config's architecture, saved as a pretraining checkpoint."""
    torch.manual_seed(0)
    vit = VisionTransformer(arch=dict(embed_dims=192, num_layers=6, num_heads=3,
                                      feedforward_channels=768), img_size=28, patch_size=4)
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in vit.state_dict().items()}}, path)
    return path


def train(work, tiny_data, vit, epochs, *extra):
    return subprocess.run(
        [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), *extra,
         '--cfg-options', f'train_dataloader.dataset.data_root={tiny_data}',
         f'model.backbone.init_cfg.checkpoint={vit}', 'train_dataloader.batch_size=10',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         f'train_cfg.max_epochs={epochs}', 'default_hooks.logger.interval=1',
         'default_hooks.checkpoint.interval=1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_config_trains_checkpoints_and_resumes_with_tools_train(tiny_data, tmp_path):
    vit = save_demo_vit(str(tmp_path / 'vit.pth'))
    work = tmp_path / 'work'
    first = train(work, tiny_data, vit, 1)
    log = first.stdout + first.stderr
    assert first.returncode == 0, log[-3000:]
    assert 'Epoch(train) [1][2/2]' in log and 'loss_rec:' in log and 'loss_div:' in log
    assert osp.isfile(work / 'epoch_1.pth')
    state = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)
    saved_vit = torch.load(vit, map_location='cpu')['state_dict']
    for k in ('pos_embed', 'layers.0.attn.qkv.weight'):  # the ViT stayed the checkpoint's
        torch.testing.assert_close(state['state_dict'][f'backbone.{k}'], saved_vit[f'backbone.{k}'])
    resumed = train(work, tiny_data, vit, 2, '--resume')
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert 'resumed epoch: 1' in log.lower() and 'Epoch(train) [2][2/2]' in log
    assert 'Epoch(train) [1][' not in log
    assert osp.isfile(work / 'epoch_2.pth')


# ------------------------------------------------- stage-1 inference: maps where stage 2 reads

WRITER = ROOT + '/tools/part_learning/write_learned_parts.py'


def tiny_trained_learner(tmp_path, seed=0, name='learner'):
    """A small learner config (the demo config with a 1-layer ViT) and a checkpoint of it."""
    from mmengine.config import Config
    cfg_path = tmp_path / f'{name}.py'
    cfg_path.write_text(
        f"_base_ = ['{ROOT}/{CONFIG}']\n"
        "model = dict(backbone=dict(arch=dict(embed_dims=32, num_layers=1, num_heads=2, "
        "feedforward_channels=64), init_cfg=None), decoder=dict(channels=8))\n")
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(str(cfg_path)).model)
    ckpt = tmp_path / f'{name}.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    return str(cfg_path), str(ckpt), model.eval()


def test_learned_maps_are_written_where_stage_2_reads_them(tiny_data, tmp_path):
    import glob

    import numpy as np

    from mim_plugins.datasets.part_maps import LoadPartMap, part_map_path
    from mim_plugins.parts.learned_parts import learned_parts
    from mim_plugins.parts.part_learner import load_image
    from mim_plugins.utils.errors import UserInputError

    cfg, ckpt, model = tiny_trained_learner(tmp_path)
    img_prefix = osp.join(tiny_data, 'train')
    images = sorted(glob.glob(osp.join(img_prefix, '**', '*.png'), recursive=True))
    bad = osp.join(img_prefix, 'broken.png')
    part_root = str(tmp_path / 'maps')
    with open(bad, 'wb') as f:
        f.write(b'not a png')
    try:
        summary = learned_parts(cfg, ckpt, tiny_data, 'train', part_root=part_root,
                                batch_size=7, progress=False)
    finally:
        os.remove(bad)
    assert summary['written'] == len(images) and summary['method'] == 'learned'
    assert [c['path'] for c in summary['corrupt']] == [bad]
    load = LoadPartMap(part_root=part_root, img_prefix=img_prefix, grid=7, num_parts=7)
    norm = dict(mean=[33.3] * 3, std=[78.6] * 3)
    batch = torch.stack([load_image(p, (28, 28), **norm) for p in images])
    expected = model.segment(batch).numpy()
    for path, ids in zip(images, expected):
        assert np.array_equal(load.transform(dict(img_path=path))['part_ids'], ids)
    assert len({e.tobytes() for e in expected}) > 1  # the maps differ between images

    # Resume: only the missing map is written; the others keep their file.
    os.remove(part_map_path(part_root, img_prefix, images[0]))
    again = learned_parts(cfg, ckpt, tiny_data, 'train', part_root=part_root, progress=False)
    assert again['written'] == 1 and again['skipped_existing'] == len(images) - 1
    # The same checkpoint reached through a symlinked folder is the same learner: resumed.
    os.symlink(osp.dirname(ckpt), str(tmp_path / 'linked'))
    linked = osp.join(str(tmp_path / 'linked'), osp.basename(ckpt))
    os.remove(part_map_path(part_root, img_prefix, images[0]))
    again = learned_parts(cfg, linked, tiny_data, 'train', part_root=part_root, progress=False)
    assert again['written'] == 1 and again['skipped_existing'] == len(images) - 1
    # Another learner's checkpoint into the same folder is refused, naming the fix.
    _, other, _ = tiny_trained_learner(tmp_path, seed=1, name='other')
    with pytest.raises(UserInputError, match='another part learner.*new --part-root'):
        learned_parts(cfg, other, tiny_data, 'train', part_root=part_root, progress=False)
    # A finer grid resizes the maps before the argmax.
    fine = learned_parts(cfg, ckpt, tiny_data, 'train', part_root=str(tmp_path / 'g14'),
                         grid=14, progress=False)
    assert fine['grid'] == [14, 14]
    assert LoadPartMap(str(tmp_path / 'g14'), img_prefix, grid=14).transform(
        dict(img_path=images[0]))['part_ids'].shape == (14, 14)


@pytest.mark.slow
def test_writer_cli_and_its_errors(tiny_data, tmp_path):
    cfg, ckpt, _ = tiny_trained_learner(tmp_path)
    args = [sys.executable, WRITER, '--config', cfg, '--checkpoint', ckpt, '--data-root',
            tiny_data, '--data-prefix', 'train', '--part-root', str(tmp_path / 'cli'),
            '--num-workers', '0', '--no-progress']
    result = subprocess.run(args, cwd=ROOT, env=run_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '20 part maps written, 0 already there' in result.stdout
    again = subprocess.run(args, cwd=ROOT, env=run_env(), capture_output=True, text=True,
                           timeout=300)
    assert '0 part maps written, 20 already there' in again.stdout
    mae_cfg = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
    bad = subprocess.run([*args[:3], mae_cfg, *args[4:]], cwd=ROOT, env=run_env(),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and 'Traceback' not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith('ERROR: Config') \
        and 'not a SemMAEPartLearner' in bad.stderr


def test_figure_shows_each_map_and_the_argmax_parts(tiny_data, tmp_path):
    import glob

    import numpy as np
    from PIL import Image

    from mim_plugins.visualization.learned_parts import render_learned_parts
    from mim_plugins.visualization.part_masks import PALETTE

    cfg, ckpt, _ = tiny_trained_learner(tmp_path)
    images = sorted(glob.glob(osp.join(tiny_data, 'train', '**', '*.png'), recursive=True))[:2]
    out = str(tmp_path / 'fig.png')
    ids = render_learned_parts(cfg, ckpt, images, out, cell=28)
    grid = np.array(Image.open(out).convert('RGB'))
    cell, pad, header, cols = 28, 4, 14, 1 + 7 + 2  # image, 7 maps, parts, overlay
    assert grid.shape == (header + 2 * (cell + pad) + pad, cols * (cell + pad) + pad, 3)
    for row in range(2):
        top, left = header + pad + row * (cell + pad), pad + 8 * (cell + pad)  # 'parts'
        centres = grid[top + 2:top + cell:4, left + 2:left + cell:4]  # one pixel per 4² cell
        assert np.array_equal(centres, PALETTE[ids[row]])
