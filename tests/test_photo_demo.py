"""The photo job's driver (tools/run_photo_demo.py), end to end at 1 epoch per stage on a small
generated photo table in the GroceryStore schema: every stage runs, the table is printed, the
figure is written."""
import json
import re
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT, run_env, tiny_photo_rows, write_photo_parquet


@pytest.mark.slow
def test_photo_demo_runs_every_stage(tmp_path):
    pytest.importorskip('pyarrow', reason='pip install -r requirements/photos.txt')
    # 64 unlabelled photos fill one pretraining batch (drop_last); 48 labelled ones a k=20 bank
    table = write_photo_parquet(str(tmp_path / 'photos.parquet'),
                                tiny_photo_rows((('train', 24), ('val', 8), ('test', 3))))
    work, data = tmp_path / 'demo', tmp_path / 'photos'
    result = subprocess.run(
        [sys.executable, 'tools/run_photo_demo.py', '--work-dir', str(work), '--data-root',
         str(data), '--parquet', table, '--pretrain-epochs', '1', '--eval-epochs', '1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "{'train': 48, 'val': 16, 'test': 6, 'classes': 2}" in out
    rows = {m.group(1): m.group(2).split() for m in re.finditer(
        r'^\[demo\] (MAE|random init|raw pixels) +([\d.% -]+)$', out, re.M)}
    assert set(rows) == {'MAE', 'random init', 'raw pixels'}, out[-2000:]
    assert rows['raw pixels'][0] == '-'
    accs = {(name, proto): float(cell.rstrip('%')) for name, cells in rows.items()
            for proto, cell in zip(('fine-tune', 'linear probe', 'k-NN'), cells) if cell != '-'}
    assert len(accs) == 8
    knn = json.loads((work / 'knn_MAE.json').read_text())
    assert abs(knn['accuracy/top1'] - accs[('MAE', 'k-NN')]) < 0.01
    assert (knn['num_train'], knn['num_val'], knn['num_classes']) == (48, 6, 2)
    assert re.search(r'total [\d.]+ min wall, [\d.]+ min CPU', out)
    fig = Image.open(work / 'mae_reconstruction_photos.png')
    assert fig.size[0] > fig.size[1]  # 4 columns, one row per test class (2 rows)
