"""The main job's driver, end to end at 1 epoch per stage on the real embedded MNIST-5k."""
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
    rows = {m.group(1).strip(): (float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r'\[demo\] (fine-tune|linear probe)\s+([\d.]+)%\s+([\d.]+)%', out)}
    assert set(rows) == {'fine-tune', 'linear probe'}
    for accs in rows.values():
        assert all(0 <= a <= 100 for a in accs)
    # the table repeats what each test run wrote to its metrics file
    import json
    ft = json.loads((work / 'fine-tune_MAE' / 'metrics.json').read_text())['accuracy/top1']
    assert abs(ft - rows['fine-tune'][0]) < 0.01
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
