"""The main job's driver and the SemMAE demo, end to end on the real embedded MNIST-5k: the main
job runs once per test run (``main_demo`` in conftest.py: MAE pretrained 10 epochs, 1 epoch of
each evaluation), the SemMAE demo reuses its MAE (1 epoch of the part learner, of each SemMAE and of each
evaluation)."""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import ROOT, run_env

# Two end-to-end runs of the demos' drivers: the slow tier (make test runs it).
pytestmark = pytest.mark.slow

PROTOCOLS = ('fine-tune', 'linear probe', 'k-NN')
# MAE must beat the random initialisation by this much (top-1 points) in the k-NN probe, which
# reads the frozen encoder as it is (1 epoch of fine-tuning or probing is too short to tell).
# Measured with the fixture's settings: 50.7% against 35.6% (docs/testing.md).
MARGIN_PROTOCOL, MARGIN = 'k-NN', 8.0


def table(stdout: str) -> dict:
    """``{(encoder, protocol): top-1}`` from the demo's table ('-': not run, left out)."""
    rows = {m.group(1): m.group(2).split() for m in re.finditer(
        r'^\[demo\] (MAE|random init|raw pixels) +([\d.% -]+)$', stdout, re.M)}
    assert set(rows) == {'MAE', 'random init', 'raw pixels'}, stdout[-2000:]
    assert all(len(cells) == len(PROTOCOLS) for cells in rows.values()), rows
    return {(name, proto): float(cell.rstrip('%')) for name, cells in rows.items()
            for proto, cell in zip(PROTOCOLS, cells) if cell != '-'}


def test_demo_runs_every_stage_and_mae_beats_random_init(main_demo):
    work, out = main_demo.work, main_demo.stdout
    assert "{'train': 4000, 'val': 1000, 'labelled': 500}" in out
    accs = table(out)
    # every row: MAE and random init under the three protocols, raw pixels without fine-tuning
    assert sorted(accs) == sorted([(n, p) for n in ('MAE', 'random init') for p in PROTOCOLS]
                                  + [('raw pixels', 'linear probe'), ('raw pixels', 'k-NN')])
    assert all(0 <= a <= 100 for a in accs.values())
    assert accs[('MAE', MARGIN_PROTOCOL)] >= accs[('random init', MARGIN_PROTOCOL)] + MARGIN, accs
    # the table repeats what each test run and each k-NN probe wrote
    for proto in ('fine-tune', 'linear probe'):
        for name in ('MAE', 'random init'):
            path = osp.join(work, f"{proto.replace(' ', '_')}_{name.replace(' ', '_')}",
                            'metrics.json')
            with open(path) as f:
                assert abs(json.load(f)['accuracy/top1'] - accs[(name, proto)]) < 0.01
    with open(osp.join(work, 'linear_probe_raw_pixels', 'metrics.json')) as f:
        assert abs(json.load(f)['accuracy/top1'] - accs[('raw pixels', 'linear probe')]) < 0.01
    for name in ('MAE', 'random init', 'raw pixels'):
        with open(osp.join(work, f"knn_{name.replace(' ', '_')}.json")) as f:
            knn = json.load(f)
        assert abs(knn['accuracy/top1'] - accs[(name, 'k-NN')]) < 0.01
        assert (knn['k'], knn['temperature'], knn['num_train'], knn['num_val']) == \
            (20, 0.07, 500, 1000)
    fig = Image.open(osp.join(work, 'mae_reconstruction.png'))
    assert fig.size == (4 * 116 + 4, 14 + 8 * 116 + 4)
    assert 'ETA' in out


def test_semmae_demo_runs_learned_and_kmeans_parts_on_the_main_jobs_mae(main_demo, tmp_path):
    mae_dir = osp.join(main_demo.work, 'mae_pretrain')
    mae_files = {f: os.stat(osp.join(mae_dir, f)).st_mtime_ns for f in os.listdir(mae_dir)}
    seg_root = str(tmp_path / 'mnist5k_seg')
    result = subprocess.run(
        [sys.executable, 'tools/run_semmae_demo.py', '--work-dir', main_demo.work,
         '--data-root', main_demo.data, '--seg-data-root', seg_root, '--parts', 'learned',
         'kmeans', '--pretrain-epochs', '1', '--eval-epochs', '1', '--learner-epochs', '1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # stage 1 froze the main job's MAE, which was not pretrained again
    with open(osp.join(mae_dir, 'last_checkpoint')) as f:
        mae_ckpt = f.read().strip()
    assert f"[demo] stage 1 uses the main job's MAE: {mae_ckpt}" in result.stdout
    assert {f: os.stat(osp.join(mae_dir, f)).st_mtime_ns for f in os.listdir(mae_dir)} == \
        mae_files
    # the learner trained its 1 epoch through tools/train.py on that MAE
    learner = torch.load(osp.join(main_demo.work, 'part_learner', 'epoch_1.pth'),
                         map_location='cpu', weights_only=True)['state_dict']
    mae = torch.load(mae_ckpt, map_location='cpu', weights_only=True)['state_dict']
    frozen = [k for k in learner if k.startswith('backbone.')]
    assert frozen and all(torch.equal(learner[k], mae[k]) for k in frozen)
    # each stage 1 wrote a 7x7 map with ids < 7 for every one of the 4000 train images, and
    # the two methods' maps differ
    maps = {}
    for parts, folder in (('kmeans', 'train'), ('learned', 'train_learned')):
        paths = sorted(glob_pngs(osp.join(main_demo.data, 'part_maps', folder)))
        assert len(paths) == 4000
        maps[parts] = np.stack([np.array(Image.open(p)) for p in paths[:200]])
        assert maps[parts].shape == (200, 7, 7) and maps[parts].max() < 7
    assert (maps['kmeans'] != maps['learned']).any()
    # each SemMAE pretrained 1 epoch on its own maps
    for parts, folder in (('kmeans', 'train'), ('learned', 'train_learned')):
        run_dir = osp.join(main_demo.work, f'semmae_{parts}_pretrain')
        assert osp.isfile(osp.join(run_dir, 'epoch_1.pth'))
        dumped = Config.fromfile(glob.glob(osp.join(run_dir, '*_1e.py'))[0])
        assert part_roots(dumped.train_dataloader.to_dict()) == \
            [osp.join(osp.abspath(main_demo.data), 'part_maps', folder)]
    # the held-out digit scenes' maps, scored against their digit masks, as printed
    with open(osp.join(main_demo.work, 'digit_mask_part_scores.json')) as f:
        scores = json.load(f)
    assert list(scores) == ['SemMAE learned', 'SemMAE k-means', 'fixed grid, 7 blocks']
    for name, s in scores.items():
        assert -1 <= s['ari'] <= 1 and 0 <= s['nmi'] <= 1 and 0 <= s['miou'] <= 1
        assert f"[demo] | {name} | {s['nmi']:.3f} | {s['ari']:.3f} | {s['miou']:.3f} |" \
            in result.stdout
    for parts in ('kmeans', 'learned'):
        assert len(glob_pngs(osp.join(main_demo.work, 'digit_scene_parts', parts))) == 1000
    # one row per protocol: the two SemMAEs, then MAE, whose cells are the main job's own
    rows = re.findall(r'^\[demo\] (fine-tune|linear probe|k-NN)\s+([\d.]+)%\s+([\d.]+)%\s+'
                      r'([\d.]+)%$', result.stdout, re.M)
    assert [r[0] for r in rows] == list(PROTOCOLS)
    main = table(main_demo.stdout)
    for proto, learned, kmeans, mae in rows:
        assert float(mae) == pytest.approx(main[('MAE', proto)], abs=0.01)
        assert 0 <= float(learned) <= 100 and 0 <= float(kmeans) <= 100
    with open(osp.join(main_demo.work, 'knn_SemMAE_learned.json')) as f:
        assert json.load(f)['accuracy/top1'] == pytest.approx(float(rows[2][1]), abs=0.01)


def part_roots(cfg) -> list:
    """The part_root of every LoadPartMap step anywhere inside the config dict ``cfg``."""
    if isinstance(cfg, dict):
        own = [cfg['part_root']] if cfg.get('type') == 'LoadPartMap' else []
        return own + [r for v in cfg.values() for r in part_roots(v)]
    if isinstance(cfg, (list, tuple)):
        return [r for v in cfg for r in part_roots(v)]
    return []


def glob_pngs(root: str) -> list:
    return [osp.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith('.png')]
