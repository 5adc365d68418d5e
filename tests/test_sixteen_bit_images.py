"""16-bit PNGs look in the demo and the figures as training sees them (issue 21, item 9): the
same pixels as their 8-bit version, not white (PIL's ``convert('RGB')`` clips 16-bit grey)."""
import cv2
import numpy as np
import pytest

from test_attention import MAE_CFG, save_tiny_mae
from mim_plugins.datasets.read_image import read_rgb


@pytest.fixture
def pair(tmp_path):
    """(8-bit PNG, the same image as a 16-bit PNG): 16-bit value v * 257 scales back to v."""
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255
    digit[6:10, 8:12] = 120
    eight, sixteen = str(tmp_path / 'digit8.png'), str(tmp_path / 'digit16.png')
    cv2.imwrite(eight, digit)
    cv2.imwrite(sixteen, digit.astype(np.uint16) * 257)
    assert cv2.imread(sixteen, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    return eight, sixteen


def test_read_rgb_keeps_the_content_of_16_bit_pngs(pair):
    eight, sixteen = pair
    assert np.array_equal(read_rgb(sixteen), read_rgb(eight))
    assert read_rgb(sixteen)[0, 0].tolist() == [0, 0, 0]  # the background stays black


def test_demo_and_part_learner_read_16_bit_pngs_as_8_bit(pair, tmp_path):
    from mim_plugins.parts.part_learner import load_image
    from mim_plugins.webapp import Request, compute_views

    eight, sixteen = pair
    ckpt = str(tmp_path / 'mae.pth')
    save_tiny_mae(ckpt)
    panels = [compute_views(Request(image=p, config=MAE_CFG, checkpoint=ckpt)).panels
              for p in pair]
    for name in ('input', 'masked input', 'reconstruction', 'attention'):
        assert np.array_equal(panels[0][name], panels[1][name]), name
    norm = dict(mean=[0.0] * 3, std=[1.0] * 3)
    assert np.array_equal(load_image(sixteen, (14, 14), **norm),
                          load_image(eight, (14, 14), **norm))


def test_semmae_mask_figure_of_a_16_bit_png(pair, tmp_path):
    from mim_plugins.datasets.part_maps import save_part_map
    from mim_plugins.visualization.part_masks import render_semmae_masks

    ids = np.zeros((7, 7), np.uint8)
    figures = []
    for image in pair:
        part_map = str(tmp_path / ('map_' + image.rsplit('/', 1)[1]))
        save_part_map(part_map, ids)
        out = str(tmp_path / ('fig_' + image.rsplit('/', 1)[1]))
        render_semmae_masks(image, part_map, out, num_parts=2)
        figures.append(cv2.imread(out))
    assert np.array_equal(*figures)
