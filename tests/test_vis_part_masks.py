"""SemMAE mask figures: part colours, overlays, and masks read back from the saved PNG."""
import importlib.util
import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.datasets.part_maps import part_map_path, save_part_map
from mim_plugins.masking import num_masked, part_mask_counts
from mim_plugins.visualization import (colorize_parts, masked_image, overlay_parts,
                                       render_semmae_masks)
from mim_plugins.visualization.part_masks import MASK_GRAY

CELL, PAD, HEADER = 112, 4, 14  # save_grid's layout
TOOL = ROOT + '/tools/visualization/vis_semmae_masks.py'
# 7x7 map, parts of 8, 8, 8, 8, 8 and 9 patches scattered over the grid: at r = 0.75 the intra
# counts round(0.75 n_p) = 6, 6, 6, 6, 6, 7 sum to num_masked(49, 0.75) = 37, so at λ = 1 no
# fixed-total correction touches them and each part has exactly its count masked.
SIZES = [8, 8, 8, 8, 8, 9]
PARTS = np.random.default_rng(0).permutation(np.repeat(np.arange(6), SIZES)).reshape(7, 7)


def write_image(path, size=28, seed=0):
    """A random colour image with R <= 100 < 150 <= G: no pixel (nor a blend of pixels) is gray,
    so gray in the figure can only be a masked patch."""
    rng = np.random.default_rng(seed)
    img = np.stack([rng.integers(0, 101, (size, size)), rng.integers(150, 256, (size, size)),
                    rng.integers(0, 256, (size, size))], -1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return str(path)


def read_masks(fig_path, rows, cols, grid):
    """(rows, cols, grid, grid) bool: which patches of each tile are MASK_GRAY (patch centres)."""
    fig = np.array(Image.open(fig_path).convert('RGB'))
    step = CELL // grid
    centres = np.arange(grid) * step + step // 2
    out = np.zeros((rows, cols, grid, grid), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            y, x = HEADER + PAD + r * (CELL + PAD), PAD + c * (CELL + PAD)
            tile = fig[y:y + CELL, x:x + CELL]
            out[r, c] = (tile[np.ix_(centres, centres)] == MASK_GRAY).all(-1)
    return out


def test_colorize_parts_distinct_and_fixed():
    ids = np.arange(256).reshape(16, 16)
    colours = colorize_parts(ids, 256).reshape(-1, 3)
    assert colours.dtype == np.uint8 and len({tuple(c) for c in colours}) == 256
    assert not any(c[0] == c[1] == c[2] for c in colours)  # gray is for masked patches
    small = colorize_parts(np.array([[3, 0], [3, 1]]), 7)
    assert small.shape == (2, 2, 3)
    assert (small[0, 0] == small[1, 0]).all() and (small[0, 0] == colours[3]).all()
    assert (small[0, 1] != small[1, 1]).any()
    with pytest.raises(ValueError):
        colorize_parts(np.array([[7]]), 7)


def test_overlay_and_masked_image():
    image = np.random.default_rng(1).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    assert np.array_equal(overlay_parts(image, PARTS, alpha=0.0), image)
    full = overlay_parts(image, PARTS, alpha=1.0)
    assert np.array_equal(full, colorize_parts(PARTS, 6).repeat(4, 0).repeat(4, 1))
    mask = PARTS == 5
    out = masked_image(image, mask)
    big = mask.repeat(4, 0).repeat(4, 1)
    assert (out[big] == MASK_GRAY).all() and np.array_equal(out[~big], image[~big])


def test_figure_masks_counts_per_lambda(tmp_path):
    r, lams = 0.75, (1.0, 0.5, 0.0)
    images = [write_image(tmp_path / f'{i}.png', seed=i) for i in range(2)]
    maps = [str(tmp_path / 'p0.png'), str(tmp_path / 'p1.png')]
    save_part_map(maps[0], PARTS)
    save_part_map(maps[1], np.random.default_rng(5).integers(0, 7, (7, 7)))
    out = tmp_path / 'fig.png'
    render_semmae_masks(images, maps, str(out), lams=lams, mask_ratio=r, seed=3, num_parts=7)
    assert Image.open(out).size == (5 * (CELL + PAD) + PAD, HEADER + 2 * (CELL + PAD) + PAD)
    masks = read_masks(out, 2, 5, 7)
    assert not masks[:, :2].any()  # original and overlay columns: nothing gray
    total = num_masked(49, r)
    assert total == 37 and (masks[:, 2:].sum((2, 3)) == total).all()

    sizes = torch.tensor(SIZES)
    per_part = [int(masks[0, 2][PARTS == p].sum()) for p in range(6)]  # λ = 1
    assert per_part == part_mask_counts(sizes, r, 1.0, torch.arange(6)).tolist()
    assert per_part == [6, 6, 6, 6, 6, 7]
    inter = np.array([int(masks[0, 4][PARTS == p].sum()) for p in range(6)])  # λ = 0
    # inter-part masking: for some part order the official counts (whole parts while the
    # truncated budget int(L·r) = 36 lasts) are all masked, and the fix-up adds what the fixed
    # total of 37 still needs on top of them
    def fits(order):
        counts = np.array(part_mask_counts(sizes, r, 0.0, torch.tensor(order)).tolist())
        return (inter >= counts).all() and counts.sum() == 36
    assert inter.sum() == total and any(fits(order) for order in itertools.permutations(range(6)))
    # the same seed draws the same figure
    again = tmp_path / 'again.png'
    render_semmae_masks(images, maps, str(again), lams=lams, mask_ratio=r, seed=3, num_parts=7)
    assert np.array_equal(np.array(Image.open(again)), np.array(Image.open(out)))


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_cli_writes_figure(tmp_path):
    prefix, part_root = tmp_path / 'img', tmp_path / 'parts'
    image = write_image(prefix / 'cls' / 'a.png')
    save_part_map(part_map_path(str(part_root), str(prefix), image), PARTS)
    out = tmp_path / 'out' / 'fig.png'
    result = subprocess.run(
        [sys.executable, TOOL, image, '--part-root', str(part_root), '--img-prefix', str(prefix),
         '--out', str(out), '--schedule-epochs', '800', '--seed', '1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # original, overlay, epochs 0 / 200 / 400 / 600 / 799
    assert Image.open(out).size == (7 * (CELL + PAD) + PAD, HEADER + CELL + PAD + PAD)
    assert (read_masks(out, 1, 7, 7)[0, 2:].sum((1, 2)) == 37).all()


def load_tool():
    spec = importlib.util.spec_from_file_location('vis_semmae_masks', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_errors(tmp_path, capsys):
    tool = load_tool()
    prefix, part_root = tmp_path / 'img', tmp_path / 'parts'
    image = write_image(prefix / 'a.png')
    base = [image, '--part-root', str(part_root), '--img-prefix', str(prefix),
            '--out', str(tmp_path / 'fig.png')]

    def error(*extra):
        with pytest.raises(SystemExit) as exc:
            tool.run_cli(lambda: tool.main(base + list(extra)))
        assert exc.value.code == 2
        message = capsys.readouterr().err.strip()
        assert message.startswith('ERROR: ') and '\n' not in message
        return message

    message = error()
    assert 'No part map' in message and image in message
    save_part_map(part_map_path(str(part_root), str(prefix), image), PARTS + 2)  # ids 2..7
    message = error('--num-parts', '7')
    assert 'part id 7' in message and image in message
    assert '(0, 1)' in error('--ratio', '1.0')
    missing = str(prefix / 'missing.png')
    with pytest.raises(SystemExit) as exc:
        tool.run_cli(lambda: tool.main([missing] + base[1:]))
    assert exc.value.code == 2 and missing in capsys.readouterr().err
    assert not (tmp_path / 'fig.png').exists()
