"""SemMAE stage 1 (part learning): k-means maths, part maps consistent across images, resume,
corrupt images, the CLI, torchrun sharding and the figure."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmpretrain.models.backbones import VisionTransformer
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.datasets.part_maps import part_map_path
from mim_plugins.parts import learn_parts
from mim_plugins.parts.kmeans import (assign, kmeans_plus_plus, minibatch_update,
                                      order_by_count)
from mim_plugins.utils.errors import UserInputError
from mim_plugins.visualization.part_masks import PALETTE

TOOL = ROOT + '/tools/part_learning/learn_parts.py'
VIS = ROOT + '/tools/visualization/vis_parts.py'
ARCH = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)
# Region types of the generated images: background, a flat red square, a striped square.
REGION_TYPES = 3


# ----------------------------------------------------------------------------- k-means, exactly

def test_minibatch_update_is_the_running_mean_of_absorbed_points():
    centroids = torch.tensor([[0., 0.], [10., 10.], [100., 100.]])
    counts = torch.zeros(3)
    a = torch.tensor([[1., 0.], [-1., 2.], [9., 11.]])
    c1, n1 = minibatch_update(centroids, counts, a)
    assert torch.equal(n1, torch.tensor([2., 1., 0.]))
    assert torch.allclose(c1, torch.tensor([[0., 1.], [9., 11.], [100., 100.]]))  # 3rd unmoved
    b = torch.tensor([[2., 3.], [11., 9.], [12., 10.]])
    c2, n2 = minibatch_update(c1, n1, b)
    assert torch.equal(n2, torch.tensor([3., 3., 0.]))
    # Each centre is the mean of every point it ever absorbed (Sculley's 1/count rate).
    assert torch.allclose(c2[0], torch.tensor([[1., 0.], [-1., 2.], [2., 3.]]).mean(0))
    assert torch.allclose(c2[1], torch.tensor([[9., 11.], [11., 9.], [12., 10.]]).mean(0))
    assert torch.equal(assign(b, c2), torch.tensor([0, 1, 1]))


def test_kmeans_recovers_known_clusters():
    gen = torch.Generator().manual_seed(0)
    true_centres = torch.tensor([[5., 0., 0.], [0., 5., 0.], [0., 0., 5.], [5., 5., 5.]])
    labels = torch.randint(4, (4000,), generator=gen)
    x = true_centres[labels] + 0.3 * torch.randn(4000, 3, generator=gen)
    centroids = kmeans_plus_plus(x[:400], 4, generator=gen)
    counts = torch.zeros(4)
    for batch in x.split(256):  # one streaming pass
        centroids, counts = minibatch_update(centroids, counts, batch)
    # Every true centre is matched by exactly one fitted centre, and the labels agree exactly.
    match = assign(true_centres, centroids)
    assert sorted(match.tolist()) == [0, 1, 2, 3]
    assert torch.allclose(centroids[match], true_centres, atol=0.05)
    assert torch.equal(assign(x, centroids), match[labels])
    assert counts.sum() == 4000


def test_kmeans_plus_plus_seeds_every_separated_cluster_and_order_by_count():
    x = torch.cat([torch.zeros(50, 2), torch.full((3, 2), 9.), torch.tensor([[-9., 9.]] * 7)])
    centres = kmeans_plus_plus(x, 3, generator=torch.Generator().manual_seed(1))
    assert {tuple(c.tolist()) for c in centres} == {(0., 0.), (9., 9.), (-9., 9.)}
    with pytest.raises(ValueError):
        kmeans_plus_plus(x[:2], 3)
    c, n = order_by_count(torch.arange(6.).view(3, 2), torch.tensor([2., 7., 2.]))
    assert torch.equal(n, torch.tensor([7., 2., 2.]))
    assert torch.equal(c, torch.tensor([[2., 3.], [0., 1.], [4., 5.]]))


# ------------------------------------------------------------------------- generated data, ViT

def make_vit(root, embed_dims=32, name='vit'):
    """A random-init 28² / 4² ViT saved as a pretraining checkpoint ('backbone.' prefix) and
    an MAE-style config describing it."""
    torch.manual_seed(0)
    arch = dict(ARCH, embed_dims=embed_dims)
    vit = VisionTransformer(arch=arch, img_size=28, patch_size=4)
    ckpt = osp.join(root, f'{name}.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in vit.state_dict().items()}}, ckpt)
    cfg = osp.join(root, f'{name}_cfg.py')
    with open(cfg, 'w') as f:
        f.write("default_scope = 'mmpretrain'\n"
                f"model = dict(type='MAE', backbone=dict(type='MAEViT', arch={arch!r}, "
                "img_size=28, patch_size=4, mask_ratio=0.75))\n"
                "data_preprocessor = dict(type='SelfSupDataPreprocessor', mean=[127.5] * 3, "
                "std=[127.5] * 3, to_rgb=True)\n")
    return cfg, ckpt


def region_image(rng):
    """28² image on a 7x7 grid of 4² patches -> (image, (7, 7) region type per patch):
    0 = noisy blue background, 1 = flat red square, 2 = black/white striped square, squares of
    2-3 patches at random, non-overlapping positions."""
    labels = np.zeros((7, 7), np.int64)
    for kind in (1, 2):
        while True:
            side = rng.integers(2, 4)
            r, c = rng.integers(0, 8 - side, 2)
            if not labels[r:r + side, c:c + side].any():
                labels[r:r + side, c:c + side] = kind
                break
    pixels = np.kron(labels, np.ones((4, 4), np.int64))
    img = np.empty((28, 28, 3), np.float64)
    img[:] = (30, 60, 200) + rng.normal(0, 12, (28, 28, 3))
    img[pixels == 1] = (220, 30, 30)
    stripes = np.where(np.arange(28) % 2 == 0, 255., 0.)[None, :, None]
    img[pixels == 2] = np.broadcast_to(stripes, (28, 28, 3))[pixels == 2]
    return np.clip(img, 0, 255).astype(np.uint8), labels


def make_region_data(root, n=24, seed=0):
    """``n`` region images under root/train/{a,b}/ -> {image path: (7, 7) region types}."""
    rng = np.random.default_rng(seed)
    truth = {}
    for i in range(n):
        img, labels = region_image(rng)
        path = osp.join(root, 'train', 'ab'[i % 2], f'{i:03d}.png')
        os.makedirs(osp.dirname(path), exist_ok=True)
        Image.fromarray(img).save(path)
        truth[path] = labels
    return truth


def adjusted_rand_index(a, b):
    """Hubert & Arabie's ARI of two flat labelings: 1 = identical partitions, ~0 = chance."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)
    pairs = lambda v: (v * (v - 1) / 2).sum()  # noqa: E731
    index, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), pairs(
        np.array([len(a)]))
    expected = rows * cols / total
    return (index - expected) / ((rows + cols) / 2 - expected)


def read_maps(part_root, img_prefix, paths):
    return {p: np.array(Image.open(part_map_path(part_root, img_prefix, p))) for p in paths}


@pytest.fixture(scope='module')
def vit(tmp_path_factory):
    return make_vit(str(tmp_path_factory.mktemp('vit')))


@pytest.fixture(scope='module')
def regions(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('regions'))
    return root, make_region_data(root)


def run(vit, root, **kwargs):
    kwargs.setdefault('batch_size', 8)
    kwargs.setdefault('progress', False)
    return learn_parts(vit[0], vit[1], root, 'train', **kwargs)


# ------------------------------------------------------------------------------ part maps

def test_parts_follow_known_regions_consistently_across_images(vit, regions, tmp_path):
    root, truth = regions
    summary = run(vit, root, part_root=str(tmp_path / 'k3'), num_parts=REGION_TYPES)
    assert summary['written'] == len(truth) and not summary['corrupt']
    maps = read_maps(str(tmp_path / 'k3'), osp.join(root, 'train'), truth)
    parts = np.concatenate([maps[p].ravel() for p in truth])
    kinds = np.concatenate([truth[p].ravel() for p in truth])
    # Pooled over all images: a per-image clustering with arbitrary ids would score low here.
    ari = adjusted_rand_index(kinds, parts)
    chance = adjusted_rand_index(np.random.default_rng(0).permutation(kinds), parts)
    assert ari > 0.9 and abs(chance) < 0.05, (ari, chance)
    # The same region type takes the same part id in (nearly) every image.
    for kind in range(REGION_TYPES):
        global_id = np.bincount(parts[kinds == kind]).argmax()
        per_image = [np.bincount(maps[p][truth[p] == kind]).argmax() for p in truth]
        assert np.mean(np.array(per_image) == global_id) >= 0.95, kind


def test_default_k7_maps_shape_values_purity_and_grid_resize(vit, regions, tmp_path):
    root, truth = regions
    summary = run(vit, root, part_root=str(tmp_path / 'k7'))
    assert summary['num_parts'] == 7 and summary['grid'] == [7, 7]
    maps = read_maps(str(tmp_path / 'k7'), osp.join(root, 'train'), truth)
    for path, ids in maps.items():
        assert ids.shape == (7, 7) and ids.dtype == np.uint8 and ids.max() < 7
    parts = np.concatenate([maps[p].ravel() for p in truth])
    kinds = np.concatenate([truth[p].ravel() for p in truth])
    assert len(np.unique(parts)) == 7
    # Over-segmenting is fine, mixing region types is not: each part is one type.
    purity = sum(np.bincount(kinds[parts == k]).max() for k in np.unique(parts)) / len(parts)
    assert purity > 0.95, purity
    # Ids are ordered by how many fitting patches each centre absorbed, biggest first.
    counts = torch.load(tmp_path / 'k7' / 'centroids.pth', weights_only=False)['counts']
    assert torch.all(counts[:-1] >= counts[1:]) and counts.sum() == 3 * len(truth) * 49
    # A finer masking grid than the ViT's 7x7 tokens: features are resized to 14x14.
    run(vit, root, part_root=str(tmp_path / 'g14'), grid=14, num_parts=3)
    fine = read_maps(str(tmp_path / 'g14'), osp.join(root, 'train'), truth)
    for path in truth:
        assert fine[path].shape == (14, 14) and fine[path].max() < 3


def test_resume_skips_done_images_and_reuses_centroids(vit, regions, tmp_path):
    root, truth = regions
    part_root = str(tmp_path / 'maps')
    run(vit, root, part_root=part_root, num_parts=3)
    paths = sorted(truth)
    maps = {p: part_map_path(part_root, osp.join(root, 'train'), p) for p in paths}
    first = read_maps(part_root, osp.join(root, 'train'), paths)
    removed = paths[::3]
    for p in removed:
        os.remove(maps[p])
    old = 1_000_000_000  # an old mtime: any rewrite would change it
    for p in paths:
        if p not in removed:
            os.utime(maps[p], (old, old))
    centroids = osp.join(part_root, 'centroids.pth')
    os.utime(centroids, (old, old))
    summary = run(vit, root, part_root=part_root, num_parts=3, fit_images=1)
    assert summary['written'] == len(removed)
    assert summary['skipped_existing'] == len(paths) - len(removed)
    for p in paths:
        if p not in removed:
            assert os.stat(maps[p]).st_mtime == old
    assert os.stat(centroids).st_mtime == old  # reused, not refitted
    # Same centroids -> the redone maps are the maps the first run wrote.
    second = read_maps(part_root, osp.join(root, 'train'), paths)
    assert all(np.array_equal(first[p], second[p]) for p in paths)
    assert not [f for f in os.listdir(osp.dirname(maps[paths[0]])) if f.startswith('.tmp')]
    with pytest.raises(UserInputError, match='K=3'):
        run(vit, root, part_root=part_root, num_parts=5)


def test_rerun_with_another_checkpoint_is_refused_and_changes_nothing(vit, regions, tmp_path):
    """Issue 21, item 10: the maps, the centroids and part_learning.json keep describing one
    checkpoint. Another checkpoint (by content, even at the same path) is refused; a copy of
    the same weights elsewhere is the same ViT."""
    import json
    import shutil
    root, truth = regions
    part_root = str(tmp_path / 'maps')
    config, first_ckpt = vit
    ckpt = str(tmp_path / 'vit.pth')
    shutil.copy(first_ckpt, ckpt)
    run((config, ckpt), root, part_root=part_root, num_parts=3)
    paths = sorted(truth)
    before = read_maps(part_root, osp.join(root, 'train'), paths)
    centroids = osp.join(part_root, 'centroids.pth')
    saved = open(centroids, 'rb').read()
    other = torch.load(ckpt, weights_only=True)
    other['state_dict'] = {k: v + 0.5 for k, v in other['state_dict'].items()}
    other_ckpt = str(tmp_path / 'other.pth')
    torch.save(other, other_ckpt)
    os.remove(part_map_path(part_root, osp.join(root, 'train'), paths[0]))  # a map to redo
    refused = r"made with the ViT checkpoint .*vit\.pth'.*this run asks for .*--part-root"
    with pytest.raises(UserInputError, match=refused):  # another file
        run((config, other_ckpt), root, part_root=part_root, num_parts=3)
    shutil.copy(other_ckpt, ckpt)
    with pytest.raises(UserInputError, match=refused):  # the same path, other weights
        run((config, ckpt), root, part_root=part_root, num_parts=3)
    assert open(centroids, 'rb').read() == saved
    assert not osp.exists(part_map_path(part_root, osp.join(root, 'train'), paths[0]))
    summary = json.load(open(osp.join(part_root, 'part_learning.json')))
    assert summary['checkpoint'].endswith('vit.pth')
    copy = str(tmp_path / 'copy_of_vit.pth')
    shutil.copy(first_ckpt, copy)
    run((config, copy), root, part_root=part_root, num_parts=3)  # the same weights: resumes
    after = read_maps(part_root, osp.join(root, 'train'), paths)
    assert all(np.array_equal(before[p], after[p]) for p in paths)


def test_corrupt_images_are_reported_and_skipped(vit, tmp_path):
    root = str(tmp_path)
    truth = make_region_data(root, n=10)
    bad = [osp.join(root, 'train', 'a', 'garbage.png'), osp.join(root, 'train', 'b', 'cut.png')]
    with open(bad[0], 'wb') as f:
        f.write(b'not an image at all')
    with open(next(iter(truth)), 'rb') as f:
        head = f.read()[:60]
    with open(bad[1], 'wb') as f:
        f.write(head)  # a truncated PNG
    summary = run(vit, root, num_parts=3)
    assert sorted(c['path'] for c in summary['corrupt']) == sorted(bad)
    assert summary['written'] == len(truth) and summary['images'] == len(truth) + 2
    part_root = osp.join(root, 'part_maps', 'train')  # the default output folder
    for p in truth:
        assert osp.isfile(part_map_path(part_root, osp.join(root, 'train'), p))
    for p in bad:
        assert not osp.exists(part_map_path(part_root, osp.join(root, 'train'), p))
    with open(osp.join(part_root, 'part_learning.json')) as f:
        assert sorted(c['path'] for c in json.load(f)['corrupt']) == sorted(bad)


def test_bad_inputs_raise_one_clear_error(vit, regions, tmp_path):
    root, _ = regions
    with pytest.raises(UserInputError, match='does not exist'):
        learn_parts(vit[0], vit[1], str(tmp_path / 'nowhere'), 'train')
    with pytest.raises(UserInputError, match="Checkpoint .* does not exist"):
        learn_parts(vit[0], str(tmp_path / 'no.pth'), root, 'train')
    other_cfg, _ = make_vit(str(tmp_path), embed_dims=48, name='wide')
    with pytest.raises(UserInputError, match='does not fit the ViT'):
        learn_parts(other_cfg, vit[1], root, 'train')
    torch.save({'state_dict': {'backbone.conv.weight': torch.zeros(1)}}, tmp_path / 'cnn.pth')
    with pytest.raises(UserInputError, match='is not a ViT'):
        learn_parts(vit[0], str(tmp_path / 'cnn.pth'), root, 'train')
    resnet_cfg = tmp_path / 'resnet.py'
    resnet_cfg.write_text("model = dict(backbone=dict(type='ResNet', depth=18))\n")
    with pytest.raises(UserInputError, match='not a ViT'):
        learn_parts(str(resnet_cfg), vit[1], root, 'train')


# ---------------------------------------------------------------------- tools, subprocesses

@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_cli_end_to_end_and_figure(vit, regions, tmp_path):
    root, truth = regions
    part_root = str(tmp_path / 'cli')
    args = [sys.executable, TOOL, '--config', vit[0], '--checkpoint', vit[1], '--data-root', root,
            '--data-prefix', 'train', '--part-root', part_root, '--num-parts', '3',
            '--batch-size', '8', '--num-workers', '1']
    result = subprocess.run(args, cwd=ROOT, env=run_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'{len(truth)} part maps written' in result.stdout
    assert f'{len(truth)}/{len(truth)}' in result.stdout  # the progress bar's last state
    again = subprocess.run(args, cwd=ROOT, env=run_env(), capture_output=True, text=True,
                           timeout=300)
    assert f'0 part maps written, {len(truth)} already there' in again.stdout
    bad = subprocess.run(args[:6] + ['--data-root', str(tmp_path / 'none')], cwd=ROOT,
                         env=run_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith('ERROR: Image folder')
    assert 'Traceback' not in bad.stderr

    images = sorted(truth)[:3]
    out = tmp_path / 'fig.png'
    fig = subprocess.run([sys.executable, VIS, *images, '--part-root', part_root, '--img-prefix',
                          osp.join(root, 'train'), '--out', str(out), '--num-parts', '3',
                          '--cols', '1', '--cell', '28'], cwd=ROOT, env=run_env(),
                         capture_output=True, text=True, timeout=300)
    assert fig.returncode == 0, fig.stderr[-3000:]
    grid = np.array(Image.open(out).convert('RGB'))
    cell, pad, header = 28, 4, 14  # save_grid's layout
    assert grid.shape == (header + 3 * (cell + pad) + pad, 3 * (cell + pad) + pad, 3)
    maps = read_maps(part_root, osp.join(root, 'train'), images)
    for row, path in enumerate(images):
        top, left = header + pad + row * (cell + pad), 2 * pad + cell  # the 'parts' column
        centres = grid[top + 2:top + cell:4, left + 2:left + cell:4]  # one pixel per 4² cell
        assert np.array_equal(centres, PALETTE[maps[path]])


@pytest.mark.slow
def test_torchrun_two_processes_write_every_map_once(vit, regions, tmp_path):
    root, truth = regions
    part_root = str(tmp_path / 'ddp')
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         TOOL, '--config', vit[0], '--checkpoint', vit[1], '--data-root', root, '--data-prefix',
         'train', '--part-root', part_root, '--num-parts', '3', '--batch-size', '4',
         '--num-workers', '0', '--launcher', 'pytorch'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(osp.join(part_root, 'part_learning.json')) as f:
        summary = json.load(f)
    assert summary['world_size'] == 2
    # Disjoint shards: the ranks' counts add up to the number of images, all of which exist.
    assert summary['written_by_rank'] == [len(truth) // 2] * 2
    maps = read_maps(part_root, osp.join(root, 'train'), truth)
    assert len(maps) == len(truth)
    # Both ranks used rank 0's centroids: the maps equal a single-process run's.
    run(vit, root, part_root=str(tmp_path / 'single'), num_parts=3, batch_size=4)
    single = read_maps(str(tmp_path / 'single'), osp.join(root, 'train'), truth)
    assert all(np.array_equal(maps[p], single[p]) for p in truth)
