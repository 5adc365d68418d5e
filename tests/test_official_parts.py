"""The official SemMAE processed data (one .npy per image) converted to our layout: files written
here in that layout (as models_mae_setting3.py reads them) decode to the image and part map
they were made from, and stage 2's LoadPartMap reads the result."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.datasets.part_maps import LoadPartMap
from mim_plugins.parts.official_npy import decode_official, to_uint8
from mim_plugins.utils.errors import UserInputError

TOOL = ROOT + '/tools/part_learning/convert_official_parts.py'


def official_array(image: np.ndarray, part_ids: np.ndarray, positions: np.ndarray,
                   p: int, rng) -> np.ndarray:
    """The official layout, built from its description: for the patches at ``positions``
    (raster indices of the source grid, here in a shuffled order, as the official files store
    them sorted by attention), [7 counts][7 one-hot][index][p x p x 3 pixels]."""
    grid_w = image.shape[1] // p
    rows = []
    order = rng.permutation(len(positions))
    counts = np.bincount(part_ids.ravel(), minlength=7)[:7]
    for k in order:
        r, c = divmod(k, grid_w)  # the k-th stored patch is cell (r, c) of the compact image
        onehot = np.zeros(7)
        if part_ids[r, c] < 7:
            onehot[part_ids[r, c]] = 1
        pixels = image[r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(-1)  # (row, col, channel)
        rows.append(np.concatenate([counts, onehot, [positions[k]], pixels]))
    return np.stack(rows).astype(np.float32)


def sample(rng, grid=4, p=2):
    image = rng.normal(size=(grid * p, grid * p, 3)).astype(np.float32)
    part_ids = rng.integers(0, 7, (grid, grid)).astype(np.uint8)
    return image, part_ids


def test_full_grid_decodes_to_the_image_and_map():
    rng = np.random.default_rng(0)
    image, ids = sample(rng)
    array = official_array(image, ids, np.arange(16), 2, rng)
    pixels, part_ids = decode_official(array, source_grid=4)
    assert np.array_equal(part_ids, ids)
    np.testing.assert_array_equal(pixels, image)
    pixels, part_ids = decode_official(array[None], source_grid=4)  # the (1, L, D) form too
    assert np.array_equal(part_ids, ids)


def test_a_sub_lattice_of_the_source_grid_is_compacted_in_order():
    rng = np.random.default_rng(1)
    image, ids = sample(rng, grid=3)
    # Every other row and column of a 6x6 grid: 9 of 36 patches (the official 196 of 784).
    positions = np.array([6 * r + c for r in (0, 2, 4) for c in (1, 3, 5)])
    pixels, part_ids = decode_official(official_array(image, ids, positions, 2, rng), 6)
    assert np.array_equal(part_ids, ids)
    np.testing.assert_array_equal(pixels, image)


def test_a_patch_without_a_part_gets_id_7_and_bad_arrays_are_refused():
    rng = np.random.default_rng(2)
    image, ids = sample(rng)
    ids[0, 0] = 7  # no part
    array = official_array(image, ids, np.arange(16), 2, rng)
    assert decode_official(array, 4)[1][0, 0] == 7
    with pytest.raises(UserInputError, match='not .patches, 15'):
        decode_official(array[:, :20], 4)
    broken = array.copy()
    broken[:, 0] += 1
    with pytest.raises(UserInputError, match='part counts'):
        decode_official(broken, 4)
    with pytest.raises(UserInputError, match='patch indices of a 3x3'):
        decode_official(array, 3)
    holes = official_array(image, ids, np.arange(16), 2, rng)[:15]
    holes[:, :7] = holes[:, 7:14].sum(0)
    with pytest.raises(UserInputError, match='lattice'):
        decode_official(holes, 4)


def test_to_uint8_undoes_the_normalisation():
    rgb = np.random.default_rng(3).integers(0, 256, (4, 4, 3)).astype(np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    stored = ((rgb / 255 - mean) / std).astype(np.float32)
    assert np.array_equal(to_uint8(stored, mean, std), rgb)
    assert to_uint8(rgb, mean, std) is rgb


@pytest.mark.slow
def test_cli_converts_a_folder_that_stage_2_reads(tmp_path):
    rng = np.random.default_rng(4)
    mean, std = [0.5] * 3, [0.25] * 3
    src = tmp_path / 'official' / 'train'
    truth = {}
    for name in ('n01/a', 'n01/b', 'n02/c'):
        rgb = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
        ids = rng.integers(0, 7, (4, 4)).astype(np.uint8)
        stored = (rgb / 255 - 0.5) / 0.25
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(src / f'{name}.npy', official_array(stored, ids, np.arange(16), 2, rng))
        truth[name] = (rgb, ids)
    np.save(src / 'n02' / 'bad.npy', np.zeros((3, 4)))
    out = tmp_path / 'ours'
    args = [sys.executable, TOOL, str(src), str(out), '--source-grid', '4', '--pixel-mean',
            *map(str, mean), '--pixel-std', *map(str, std)]
    result = subprocess.run(args, cwd=ROOT, env=run_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '3 converted, 0 already there, 1 not in the official layout' in result.stdout
    assert 'part-map grids: 4x4' in result.stdout and 'bad.npy' in result.stdout
    load = LoadPartMap(str(out / 'part_maps'), str(out / 'images'), grid=4, num_parts=7)
    for name, (rgb, ids) in truth.items():
        img = out / 'images' / f'{name}.png'
        assert np.array_equal(np.asarray(Image.open(img)), rgb)
        assert np.array_equal(load.transform(dict(img_path=str(img)))['part_ids'], ids)
    again = subprocess.run(args, cwd=ROOT, env=run_env(), capture_output=True, text=True,
                           timeout=300)
    assert '0 converted, 3 already there' in again.stdout
    empty = subprocess.run([sys.executable, TOOL, str(tmp_path / 'none'), str(out)], cwd=ROOT,
                           env=run_env(), capture_output=True, text=True, timeout=300)
    assert empty.returncode == 2 and empty.stderr.strip().startswith('ERROR: No .npy files')
