"""Our models against golden outputs of the official SemanticMIM / SupMAE / SemMAE code (and
MAE-pytorch's: tests/test_mae_pytorch.py).

The fixtures (tests/fixtures/official, see its README) hold official random weights, inputs,
outputs and gradient norms; ``tools/analysis/official_parity.py`` converts and compares.
"""
import glob
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import run_env

from conftest import run_env
from mim_plugins.fidelity import FixtureError, check

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = sorted(glob.glob(osp.join(ROOT, 'tests', 'fixtures', 'official', '*.pt')))
TRAIN = [f for f in FIXTURES if osp.basename(f).endswith('_adamw.pt')]  # steps, not outputs
SEMANTICMIM = [f for f in FIXTURES
               if osp.basename(f).startswith('semanticmim_') and f not in TRAIN]
TOOL = osp.join(ROOT, 'tools', 'analysis', 'official_parity.py')


def tool(*paths: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *paths], capture_output=True, text=True,
                          cwd=ROOT, env=run_env(), timeout=600)


def test_every_fixture_is_shipped():
    names = {osp.basename(f) for f in FIXTURES}
    assert {'semanticmim_maskfeat_bottleneck_8cls.pt', 'semanticmim_maskfeat_bottleneck_sepmask.pt',
            'semanticmim_beit_bottleneck.pt', 'semanticmim_maskfeat_baseline.pt',
            'supmae_tiny.pt', 'semmae_counts.pt', 'mae_pytorch_tiny.pt',
            'mae_pytorch_tiny_layerscale.pt', 'mae_pytorch_finetune_tiny.pt'} <= names


@pytest.mark.parametrize('path', SEMANTICMIM, ids=osp.basename)
def test_semanticmim_matches_the_official_code(path):
    lines = check(path)
    failing = [str(line) for line in lines if not line.ok]
    assert failing == []
    names = {line.name for line in lines}
    assert {'pred_tokens', 'cls_tokens', 'visible_tokens', 'grads (rel)',
            'grads (who trains)'} <= names


def perturbed(tmp_path, path: str, edit) -> str:
    fx = torch.load(path, weights_only=True)
    edit(fx)
    out = tmp_path / osp.basename(path)
    torch.save(fx, out)
    return str(out)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_the_tool_passes_on_every_fixture_and_fails_on_a_perturbed_one(tmp_path):
    done = tool(*FIXTURES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'FAIL' not in done.stdout and f'in {len(FIXTURES)} fixture(s)' in done.stdout

    def nudge(fx):  # one official output off by 10x its tolerance
        fx['outputs']['pred_tokens'][0, 0, 0] += 10 * fx['atol']
    bad = perturbed(tmp_path, SEMANTICMIM[0], nudge)
    done = tool(bad)
    assert done.returncode == 1
    fails = [line for line in done.stdout.splitlines() if line.startswith('FAIL')]
    assert len(fails) == 1 and 'pred_tokens' in fails[0]


def test_a_port_that_leaves_the_last_main_layer_untrained_is_caught(tmp_path):
    """The bug of the first port: the last main layer got no gradient. Its official gradient
    set to zero by hand is what that port would have matched; ours must fail on it."""
    path = next(p for p in SEMANTICMIM if 'bottleneck_8cls' in p)
    fx = torch.load(path, weights_only=True)
    last = max(int(k.split('.')[1]) for k in fx['grads'] if k.startswith('layers.'))

    def zero_last(fx):
        for name in fx['grads']:
            if name.startswith(f'layers.{last}.'):
                fx['grads'][name] = torch.tensor(0.)
    lines = check(perturbed(tmp_path, path, zero_last))
    bad = [line for line in lines if not line.ok]
    assert [line.name for line in bad] == ['grads (rel)']


def test_a_weight_the_model_does_not_have_is_refused(tmp_path):
    def extra(fx):
        fx['state_dict']['layers.0.attn.extra.weight'] = torch.zeros(2, 2)
    with pytest.raises(FixtureError, match='unexpected'):
        check(perturbed(tmp_path, SEMANTICMIM[0], extra))


def test_sizes_that_do_not_match_are_refused(tmp_path):
    def wider(fx):
        fx['official_kwargs']['arch'] = dict(fx['official_kwargs']['arch'], embed_dims=64)
    with pytest.raises(FixtureError, match='shape'):
        check(perturbed(tmp_path, SEMANTICMIM[0], wider))


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_unusable_files_get_one_line_naming_the_file(tmp_path):
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(open(SEMANTICMIM[0], 'rb').read()[:1000])
    other = tmp_path / 'other.pt'
    torch.save({'state_dict': {}}, other)
    missing = tmp_path / 'missing.pt'
    for path, words in ((truncated, 'cannot be read'), (other, 'not a golden fixture'),
                        (missing, 'does not exist')):
        done = tool(str(path))
        assert done.returncode == 2
        assert str(path) in done.stderr and words in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
