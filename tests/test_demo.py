"""The main job's driver, end to end at 1 epoch per stage on the real embedded MNIST-5k."""
import json
import re
import subprocess
import sys

from PIL import Image

from conftest import ROOT, run_env


def test_demo_runs_every_stage(tmp_path):
    work, data = tmp_path / 'demo', tmp_path / 'mnist5k'
    result = subprocess.run(
        [sys.executable, 'tools/run_demo.py', '--work-dir', str(work), '--data-root', str(data),
         '--pretrain-epochs', '1', '--eval-epochs', '1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "{'train': 4000, 'val': 1000, 'labelled': 500}" in out
    # one row per encoder, columns fine-tune / linear probe / k-NN ('-': not run)
    rows = {m.group(1): m.group(2).split() for m in re.finditer(
        r'^\[demo\] (MAE|random init|raw pixels) +([\d.% -]+)$', out, re.M)}
    assert set(rows) == {'MAE', 'random init', 'raw pixels'}, out[-2000:]
    assert rows['raw pixels'][0] == '-'
    accs = {(name, proto): float(cell.rstrip('%')) for name, cells in rows.items()
            for proto, cell in zip(('fine-tune', 'linear probe', 'k-NN'), cells) if cell != '-'}
    assert len(accs) == 8 and all(0 <= a <= 100 for a in accs.values())
    # the table repeats what each test run and each k-NN probe wrote
    ft = json.loads((work / 'fine-tune_MAE' / 'metrics.json').read_text())['accuracy/top1']
    assert abs(ft - accs[('MAE', 'fine-tune')]) < 0.01
    probe = json.loads((work / 'linear_probe_raw_pixels' / 'metrics.json').read_text())
    assert abs(probe['accuracy/top1'] - accs[('raw pixels', 'linear probe')]) < 0.01
    for name in ('MAE', 'random init', 'raw pixels'):
        knn = json.loads((work / f"knn_{name.replace(' ', '_')}.json").read_text())
        assert abs(knn['accuracy/top1'] - accs[(name, 'k-NN')]) < 0.01
        assert (knn['k'], knn['temperature'], knn['num_train'], knn['num_val']) == \
            (20, 0.07, 500, 1000)
    fig = Image.open(work / 'mae_reconstruction.png')
    assert fig.size == (4 * 116 + 4, 14 + 8 * 116 + 4)
    assert 'ETA' in out


def test_semmae_demo_runs_stage1_stage2_and_evaluates(tmp_path):
    work, data = tmp_path / 'demo', tmp_path / 'mnist5k'
    result = subprocess.run(
        [sys.executable, 'tools/run_semmae_demo.py', '--work-dir', str(work), '--data-root',
         str(data), '--pretrain-epochs', '1', '--eval-epochs', '1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # stage 1 wrote a 7x7 map with ids < 7 for every one of the 4000 train images
    maps = list((data / 'part_maps' / 'train').rglob('*.png'))
    assert len(maps) == 4000
    import numpy as np
    ids = np.array(Image.open(maps[0]))
    assert ids.shape == (7, 7) and ids.max() < 7
    assert (work / 'semmae_pretrain' / 'epoch_1.pth').is_file()
    rows = re.findall(r'\[demo\] (fine-tune|linear probe)\s+([\d.]+)%\s+([\d.]+)%', result.stdout)
    assert [r[0] for r in rows] == ['fine-tune', 'linear probe']
