"""Scoring part discovery against ground truth: the metrics against direct computations, the
generated scenes (parts by place, not colour), the grid control, the folder scoring (part scenes
and the digit scenes' masks) and the seed summary."""
import itertools
import os.path as osp
import sys

import numpy as np
import pytest
from PIL import Image

from mim_plugins.datasets.part_maps import part_map_path, save_part_map
from mim_plugins.datasets.part_scenes import part_scene, patch_labels, write_part_scenes
from mim_plugins.evaluation.part_eval import (digit_mask, grid_parts, scene_images, score_grid,
                                              score_maps)
from mim_plugins.evaluation.part_metrics import ari, matched_miou, nmi, part_scores

from conftest import ROOT


def direct_ari(a, b):
    """The Rand index over all pairs, adjusted by its expectation under permutations (brute
    force over pairs)."""
    n = len(a)
    pairs = list(itertools.combinations(range(n), 2))
    same_a = np.array([a[i] == a[j] for i, j in pairs])
    same_b = np.array([b[i] == b[j] for i, j in pairs])
    index = (same_a & same_b).sum()
    expected = same_a.sum() * same_b.sum() / len(pairs)
    top = (same_a.sum() + same_b.sum()) / 2
    return (index - expected) / (top - expected)


def direct_nmi(a, b):
    n = len(a)
    pa = {x: np.mean(a == x) for x in set(a)}
    pb = {y: np.mean(b == y) for y in set(b)}
    mi = 0.
    for x in pa:
        for y in pb:
            pxy = np.mean((a == x) & (b == y))
            if pxy > 0:
                mi += pxy * np.log(pxy / (pa[x] * pb[y]))
    ha = -sum(p * np.log(p) for p in pa.values())
    hb = -sum(p * np.log(p) for p in pb.values())
    return mi / ((ha + hb) / 2)


def test_metrics_against_direct_computations():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.integers(0, 3, 40), rng.integers(0, 4, 40)
        b[:20] = a[:20]  # partly agreeing
        assert nmi(a, b) == pytest.approx(direct_nmi(a, b))
        assert ari(a, b) == pytest.approx(direct_ari(a, b))
    a = np.array([0, 0, 1, 1, 2, 2])
    relabelled = np.array([5, 5, 3, 3, 9, 9])  # same partition, other ids
    assert part_scores(a, relabelled) == pytest.approx(dict(nmi=1., ari=1., miou=1.))
    # IoU matching: true {0,1}->pred 7 (IoU 2/4 for 0 ... ) computed by hand.
    truth = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([7, 7, 7, 7, 8, 8])
    # Best one-to-one: 2<->8 (IoU 1), 0 or 1 <-> 7 (IoU 2/4); the third true part gets nothing.
    assert matched_miou(truth, pred) == pytest.approx((1 + 0.5 + 0) / 3)
    assert ari(np.arange(6) % 2, np.arange(6) // 3) < 0.1


def test_scene_parts_are_defined_by_place_not_colour():
    rng = np.random.default_rng(0)
    scenes = [part_scene(rng) for _ in range(40)]
    for image, labels in scenes:
        assert image.shape == (40, 40, 3) and labels.shape == (40, 40)
        assert set(np.unique(labels)) == {0, 1, 2, 3}
        rows = {k: np.nonzero(labels == k)[0].mean() for k in (1, 2, 3)}
        assert rows[1] < rows[2] < rows[3]  # head above body above legs, always
    # Colour does not tell the parts: the mean colour of a part varies as much between images
    # as the mean colours of different parts do.
    means = np.array([[img[lab == k].mean(0) for k in (1, 2, 3)] for img, lab in scenes])
    within = means.std(0).mean()  # spread of one part's colour across images
    between = means.mean(0).std(0).mean()  # spread between the parts' average colours
    assert within > 5 * between
    # The object moves: the head's place varies over the image.
    heads = np.array([np.argwhere(lab == 1).mean(0) for _, lab in scenes])
    assert heads.std(0).min() > 2


def test_patch_labels_take_the_majority():
    labels = np.zeros((4, 4), np.uint8)
    labels[:2, :2] = [[1, 1], [1, 2]]
    labels[2:, 2:] = [[3, 3], [2, 2]]  # a tie between 2 and 3: the lower label
    assert patch_labels(labels, 2).tolist() == [[1, 0], [0, 2]]
    with pytest.raises(ValueError, match='multiple'):
        patch_labels(labels, 3)


def test_grid_control_is_a_fixed_block_layout():
    assert grid_parts(4, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    g = grid_parts(10, 7)
    assert g.max() == 6 and len(np.unique(g)) == 7


def test_folder_scores_perfect_maps_and_the_grid(tmp_path):
    root = write_part_scenes(str(tmp_path / 'scenes'), num_train=2, num_test=6, size=40)
    test, labels = f'{root}/test', f'{root}/labels/test'
    images = scene_images(test)
    assert len(images) == 6 and len(scene_images(f'{root}/train')) == 2
    for path in images:  # the true part map, relabelled: a perfect discovery
        true = patch_labels(np.asarray(Image.open(part_map_path(labels, test, path))), 10)
        save_part_map(part_map_path(str(tmp_path / 'perfect'), test, path), (true + 1) % 4)
        noise = np.random.default_rng(len(path)).integers(0, 4, (10, 10))
        save_part_map(part_map_path(str(tmp_path / 'noise'), test, path), noise)
    assert score_maps(test, labels, str(tmp_path / 'perfect'), 10) == pytest.approx(
        dict(nmi=1., ari=1., miou=1.))
    noise = score_maps(test, labels, str(tmp_path / 'noise'), 10)
    assert noise['ari'] < 0.1 and noise['nmi'] < 0.2
    grid = score_grid(test, labels, 10, 4)
    assert 0 <= grid['ari'] < 0.9


@pytest.mark.slow
def test_eval_driver_runs_every_stage_per_seed_and_prints_the_tables(tmp_path):
    import json
    import os
    import subprocess

    from conftest import run_env
    work = tmp_path / 'eval'
    result = subprocess.run(
        [sys.executable, 'tools/part_learning/eval_parts.py', '--work-dir', str(work),
         '--num-train', '64', '--num-test', '8', '--mae-epochs', '1', '--learner-epochs', '1',
         '--seeds', '3', '5'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    per_seed = {}
    for seed in (3, 5):
        seed_dir = work / f'seed_{seed}'
        per_seed[seed] = scores = json.loads((seed_dir / 'scores.json').read_text())
        assert len(scores) == 3
        for name, s in scores.items():
            assert f"| {name} | {s['nmi']:.3f} | {s['ari']:.3f} | {s['miou']:.3f} |" in \
                result.stdout
            assert 0 <= s['nmi'] <= 1 and s['ari'] <= 1 and 0 <= s['miou'] <= 1
        for method in ('learned', 'kmeans'):  # one map per test image
            assert len(scene_images(osp.join(seed_dir, 'maps', method))) == 8
        assert len(scene_images(osp.join(seed_dir, 'data', 'test'))) == 8
        # the length flags refit each recipe's schedule (a config of 1 epoch, cosine included)
        for stage in ('mae', 'learner'):
            refitted = [n for n in os.listdir(seed_dir / stage / 'schedule')
                        if n.endswith('_1e.py')]
            assert len(refitted) == 1 and (seed_dir / stage / refitted[0]).is_file()
    # each seed drew its own scenes
    first = sorted(scene_images(str(work / 'seed_3' / 'data' / 'test')))[0]
    other = first.replace('seed_3', 'seed_5')
    assert not np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(other)))
    # the summary is the mean and standard deviation of the two seeds, printed
    summary = json.loads((work / 'scores.json').read_text())['summary']
    for name, s in summary.items():
        values = [per_seed[seed][name]['nmi'] for seed in (3, 5)]
        assert s['nmi'] == f'{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}'
        assert f"| {name} | {s['nmi']} | {s['ari']} | {s['miou']} |" in result.stdout


def test_digit_masks_score_every_patch_digit_against_background(tmp_path):
    from mim_plugins.datasets.seg_data import prepare_mnist_seg

    root = str(tmp_path / 'seg')
    prepare_mnist_seg(root, num_train=2, num_val=6)
    images, masks = f'{root}/images/validation', f'{root}/annotations/validation'
    paths = scene_images(images)
    assert len(paths) == 6 and paths[0].endswith('.jpg')
    truth = []
    for i, path in enumerate(paths):
        raw = np.asarray(Image.open(part_map_path(masks, images, path)))
        true = digit_mask(raw, 7)
        # a patch is digit when most of its 16 pixels carry a digit id (1..10), by direct count
        counts = (raw > 0).reshape(7, 4, 7, 4).sum((1, 3))
        assert true.tolist() == (counts > 8).astype(np.uint8).tolist()
        truth.append(true)
        # the digit split into two parts (left / right half), background a third
        split = np.where(true > 0, 1 + (np.arange(7)[None, :] >= 4), 0).astype(np.uint8)
        save_part_map(part_map_path(str(tmp_path / 'perfect'), images, path), true * 5)
        save_part_map(part_map_path(str(tmp_path / 'split'), images, path), split)
    truth = np.concatenate([t.ravel() for t in truth])
    assert 0 < truth.mean() < 0.5  # both labels occur; every patch is scored, not only digits
    perfect = score_maps(images, masks, str(tmp_path / 'perfect'), 7, digit_mask, False)
    assert perfect == pytest.approx(dict(nmi=1., ari=1., miou=1.))
    split = score_maps(images, masks, str(tmp_path / 'split'), 7, digit_mask, False)
    assert split['nmi'] < 1 and split['ari'] < 1 and split['miou'] < 1
    assert score_grid(images, masks, 7, 7, digit_mask, False)['ari'] < 0.5


def test_seed_summary_is_the_mean_and_sample_std():
    sys.path.insert(0, osp.join(ROOT, 'tools', 'part_learning'))
    try:
        from eval_parts import summarise
    finally:
        sys.path.pop(0)
    per_seed = {0: {'a': dict(nmi=0.1, ari=0.0)}, 1: {'a': dict(nmi=0.3, ari=0.2)},
                2: {'a': dict(nmi=0.5, ari=0.1)}}
    assert summarise(per_seed) == {'a': {'nmi': '0.300 ± 0.200', 'ari': '0.100 ± 0.100'}}
    assert summarise({4: per_seed[0]}) == {'a': {'nmi': '0.100 ± 0.000', 'ari': '0.000 ± 0.000'}}
