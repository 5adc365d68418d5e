"""configs_seg/_base_/ reproduces the mmsegmentation 1.2.2 configs our segmentation configs used
to inherit as `mmseg::...` (which mmengine resolves only through the distribution name
`mmsegmentation`, absent with the lite profile's onedl-mmsegmentation): each file, merged with
its own bases, equals the merged upstream file. Two references: a snapshot made once from the
mmsegmentation 1.2.2 wheel (tests/fixtures/mmseg_bases/mmsegmentation-1.2.2.json, tuples kept
as tuples), and the copy the installed mmseg distribution ships (`mmseg/.mim/configs`), read
here without a network.

Re-make the snapshot from an unpacked mmsegmentation 1.2.2 wheel
(`pip download mmsegmentation==1.2.2 --no-deps`):

    python tests/test_seg_base_configs.py --snapshot UNPACKED/mmseg/.mim/configs
"""
import json
import os.path as osp
import sys
from typing import Any, Dict

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SNAPSHOT = osp.join(ROOT, 'tests', 'fixtures', 'mmseg_bases', 'mmsegmentation-1.2.2.json')
# ours (configs_seg/_base_/) -> the mmsegmentation 1.2.2 config (configs/) it reproduces
REPRODUCES = {
    'datasets/ade20k.py': '_base_/datasets/ade20k.py',
    'datasets/ade20k_640x640.py': '_base_/datasets/ade20k_640x640.py',
    'datasets/pascal_voc12.py': '_base_/datasets/pascal_voc12.py',
    'default_runtime.py': '_base_/default_runtime.py',
    'schedules/schedule_160k.py': '_base_/schedules/schedule_160k.py',
    'models/upernet_mae.py': '_base_/models/upernet_mae.py',
    'models/upernet_beit.py': '_base_/models/upernet_beit.py',
    'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py':
        'mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'beit-base_upernet_8xb2-160k_ade20k-640x640.py':
        'beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py',
}


def encode(value: Any) -> Any:
    """A merged config as JSON that keeps tuples apart from lists (mmseg reads both, but the
    recipe says which)."""
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {'__tuple__': [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    return value


def merged(path: str) -> Any:
    """The config at ``path`` merged with its bases, encoded."""
    return encode(Config.fromfile(path).to_dict())


def ours(name: str) -> Any:
    return merged(osp.join(ROOT, 'configs_seg', '_base_', name))


def make_snapshot(upstream_configs: str) -> Dict[str, Any]:
    return {up: merged(osp.join(upstream_configs, up)) for up in REPRODUCES.values()}


def installed_mmseg_configs() -> str:
    """``mmseg/.mim/configs`` of the installed mmseg distribution (either one ships it)."""
    import importlib.util
    spec = importlib.util.find_spec('mmseg')
    if spec is None:
        pytest.fail('mmseg is not installed: both install profiles install it')
    return osp.join(osp.dirname(spec.origin), '.mim', 'configs')


@pytest.fixture(scope='module')
def snapshot() -> Dict[str, Any]:
    with open(SNAPSHOT) as f:
        return json.load(f)


def test_snapshot_covers_every_base_file():
    import glob
    files = {osp.relpath(p, osp.join(ROOT, 'configs_seg', '_base_'))
             for p in glob.glob(osp.join(ROOT, 'configs_seg', '_base_', '**', '*.py'),
                                recursive=True)}
    assert files == set(REPRODUCES)


@pytest.mark.parametrize('name', sorted(REPRODUCES))
def test_base_equals_mmsegmentation_1_2_2(name, snapshot):
    assert ours(name) == snapshot[REPRODUCES[name]]


@pytest.mark.parametrize('name', sorted(REPRODUCES))
def test_base_equals_the_installed_mmseg_copy(name):
    assert ours(name) == merged(osp.join(installed_mmseg_configs(), REPRODUCES[name]))


def test_comparison_sees_a_changed_value(snapshot, tmp_path):
    """A one-number change of a recipe (the MAE layer decay) is a difference."""
    import shutil
    base = osp.join(ROOT, 'configs_seg', '_base_')
    copy = tmp_path / '_base_'
    shutil.copytree(base, copy)
    name = 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'
    text = (copy / name).read_text()
    assert text.count('layer_decay_rate=0.65') == 1
    (copy / name).write_text(text.replace('layer_decay_rate=0.65', 'layer_decay_rate=0.75'))
    changed = merged(str(copy / name))
    assert changed != snapshot[REPRODUCES[name]]
    assert changed['optim_wrapper']['paramwise_cfg']['layer_decay_rate'] == 0.75


def test_no_seg_config_names_a_distribution():
    """mmengine resolves `mmseg::` through the distribution mmsegmentation only."""
    import glob
    for path in glob.glob(osp.join(ROOT, 'configs_seg', '**', '*.py'), recursive=True):
        with open(path) as f:
            assert 'mmseg::' not in f.read(), path


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] != '--snapshot':
        sys.exit(__doc__)
    with open(SNAPSHOT, 'w') as f:
        json.dump(make_snapshot(sys.argv[2]), f, indent=1, sort_keys=True)
        f.write('\n')
    print(f'wrote {SNAPSHOT}')
