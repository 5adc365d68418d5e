"""The learned part learner in the web demo: its panel shows the maps the model computes on the
image and their argmax, part-guided masks follow those parts, learners under work_dirs/ are
offered, and a wrong or missing learner is refused with the fix."""
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import ROOT
from pickle_attacks import ATTACKS, write_zip
from test_attention import MAE_CFG, save_tiny_mae
from test_part_learner import tiny_trained_learner
from mim_plugins.parts.part_learner import load_image
from mim_plugins.utils.errors import UserInputError
from mim_plugins.visualization.attention import heatmap
from mim_plugins.visualization.images import square_resize, upscale
from mim_plugins.visualization.part_masks import MASK_GRAY, PALETTE, overlay_parts
from mim_plugins.webapp import PANELS, Request, compute_views, draw_masks, examples
from mim_plugins.webapp.checkpoints import find_checkpoints, find_part_learners
from mim_plugins.webapp.learned import CELL, KMEANS, learned_parts

NORM = dict(mean=[33.3] * 3, std=[78.6] * 3)  # the MNIST-5k configs' preprocessor
PAD, HEADER = 4, 14  # grid_image's layout


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A tiny MAE checkpoint, a tiny learner (config, checkpoint) and the learner itself."""
    tmp = tmp_path_factory.mktemp('learned')
    save_tiny_mae(str(tmp / 'mae.pth'))
    cfg, ckpt, model = tiny_trained_learner(tmp)
    return str(tmp / 'mae.pth'), (cfg, ckpt), model


def direct_maps(model, image: str) -> torch.Tensor:
    """(N, 7, 7) the learner's maps of a square 28-pixel image, computed without the demo."""
    with torch.no_grad():
        return model(load_image(image, (28, 28), **NORM)[None])[0]


def cell_of(panel: np.ndarray, col: int) -> np.ndarray:
    left = PAD + col * (CELL + PAD)
    return panel[HEADER + PAD:HEADER + PAD + CELL, left:left + CELL]


def test_panel_shows_the_models_maps_and_their_argmax(files):
    mae, learner, model = files
    digit = examples()['mnist_val_digit3']
    views = compute_views(Request(image=digit, config=MAE_CFG, checkpoint=mae, learner=learner))
    want = direct_maps(model, digit)
    ids = want.argmax(0).numpy()
    assert len(np.unique(ids)) > 1  # a map of one part would make the checks below trivial
    learned = learned_parts(learner, np.array(Image.open(digit).convert('RGB')), (7, 7))
    torch.testing.assert_close(torch.from_numpy(learned.maps), want)
    assert np.array_equal(learned.part_ids, ids)

    panel = views.panels['learned parts']
    assert np.array_equal(panel, learned.panel)
    assert panel.shape == (HEADER + CELL + 2 * PAD, 10 * (CELL + PAD) + PAD, 3)  # 7 maps + 3
    for n in range(7):
        assert np.array_equal(cell_of(panel, 1 + n), heatmap(want[n].numpy(), CELL, 'viridis'))
    parts = cell_of(panel, 8)[CELL // 14::CELL // 7, CELL // 14::CELL // 7]  # cell centres
    assert np.array_equal(parts, PALETTE[ids])
    assert any('Learned parts: the 7 attention maps' in n for n in views.notes)
    assert views.panels['part map'] is None  # masks are random: no part map to show


def test_panel_follows_the_image(files):
    mae, learner, model = files
    panels = {}
    for name in ('mnist_val_digit3', 'mnist_val_digit0'):
        image = examples()[name]
        views = compute_views(Request(image=image, config=MAE_CFG, checkpoint=mae,
                                      learner=learner))
        panels[name] = views.panels['learned parts']
        ids = direct_maps(model, image).argmax(0).numpy()
        parts = cell_of(panels[name], 8)[CELL // 14::CELL // 7, CELL // 14::CELL // 7]
        assert np.array_equal(parts, PALETTE[ids])
    assert not np.array_equal(cell_of(panels['mnist_val_digit3'], 1),
                              cell_of(panels['mnist_val_digit0'], 1))
    # a masking grid other than the learner's: the maps resized before the argmax, as
    # stage-1 inference's --grid does
    image = examples()['mnist_val_digit0']
    coarse = learned_parts(learner, np.array(Image.open(image).convert('RGB')), (4, 4))
    want = model.segment(load_image(image, (28, 28), **NORM)[None], (4, 4))[0].numpy()
    assert coarse.part_ids.shape == (4, 4) and np.array_equal(coarse.part_ids, want)
    assert '4x4 masking grid' in coarse.note


@pytest.mark.parametrize('lam', [0.0, 1.0])
def test_part_guided_masks_follow_the_learned_parts(files, lam):
    mae, learner, model = files
    digit = examples()['mnist_val_digit3']
    req = dict(image=digit, config=MAE_CFG, checkpoint=mae, strategy='part-guided', lam=lam,
               seed=4)
    views = compute_views(Request(**req, learner=learner))
    ids = direct_maps(model, digit).argmax(0).numpy()
    hidden, _ = draw_masks('part-guided', (7, 7), 0.75, seed=4, lam=lam, part_ids=ids)
    gray = upscale(np.repeat(hidden.view(7, 7).numpy()[..., None].astype(np.uint8), 3, -1),
                   224)[..., 0].astype(bool)
    big = upscale(square_resize(np.array(Image.open(digit).convert('RGB')), 28), 224)
    assert (views.panels['masked input'][gray] == MASK_GRAY).all()
    assert np.array_equal(views.panels['masked input'][~gray], big[~gray])
    assert np.array_equal(views.panels['part map'], overlay_parts(big, ids, num_parts=7))
    assert any("part learner's argmax parts" in n for n in views.notes)
    # without a learner: the k-means baseline, named as such, and no learned panel
    baseline = compute_views(Request(**req, centroids=None))
    assert baseline.panels['learned parts'] is None
    assert any('k-means baseline' in n for n in baseline.notes)


def test_bad_learners_are_refused_with_the_fix(files, tmp_path):
    mae, (cfg, ckpt), _ = files
    digit = examples()['mnist_val_digit3']

    def view(learner):
        return compute_views(Request(image=digit, config=MAE_CFG, checkpoint=mae,
                                     learner=learner))

    with pytest.raises(UserInputError, match=r"Config '.*mae_vit.*' trains 'MAE', not a "
                       r'SemMAEPartLearner\. Fix: pass configs/semmae/semmae-parts_'):
        view((MAE_CFG, ckpt))
    with pytest.raises(UserInputError, match=r"Checkpoint '.*mae.pth' is not a part learner's: "
                       r'.*\(embed\.\*, decoder\.\*\).*Fix: pass the epoch_N.pth'):
        view((cfg, mae))
    with pytest.raises(UserInputError, match=r"Part learner checkpoint '.*none.pth' does not "
                       'exist. Fix:'):
        view((cfg, str(tmp_path / 'none.pth')))
    other_cfg, other_ckpt, _ = tiny_trained_learner(tmp_path, name='other')
    with open(other_cfg, 'a') as f:
        f.write('model.update(num_parts=5)\n')
    with pytest.raises(UserInputError, match=r'does not fit the part learner of .*Fix: pass the '
                       'config the checkpoint was trained with'):
        view((other_cfg, other_ckpt))
    # read without running code: a crafted pickle is refused, its payload never runs
    evil, marker = str(tmp_path / 'evil.pth'), tmp_path / 'ran'
    write_zip(evil, ATTACKS['reduce'](str(marker)))
    with pytest.raises(UserInputError, match=r"Checkpoint '.*evil.pth' could not be read"):
        view((cfg, evil))
    assert not marker.exists()
    # a part learner is no pretraining checkpoint: the demo says which models it draws
    with pytest.raises(UserInputError, match='cannot show a SemMAEPartLearner model'):
        compute_views(Request(image=digit, config=cfg, checkpoint=ckpt))


def test_part_learners_under_work_dirs_are_offered(files, tmp_path):
    mae, (cfg, ckpt), _ = files
    for name, config, checkpoint in (('semmae_parts', cfg, ckpt), ('mae_run', MAE_CFG, mae)):
        run = tmp_path / name
        run.mkdir()
        Config.fromfile(config).dump(str(run / osp.basename(config)))  # as tools/train.py does
        shutil.copy(checkpoint, run / 'epoch_1.pth')
        (run / 'last_checkpoint').write_text(str(run / 'epoch_1.pth'))
    learners = find_part_learners(str(tmp_path))
    assert learners == {'semmae_parts (7 learned parts)': (
        str(tmp_path / 'semmae_parts' / osp.basename(cfg)),
        str(tmp_path / 'semmae_parts' / 'epoch_1.pth'))}
    pretraining = {k for k, v in find_checkpoints(str(tmp_path)).items() if str(tmp_path) in v[1]}
    assert pretraining == {'mae_run (MAE)'}  # the learner draws no reconstruction


def test_app_chooses_a_learner_or_the_kmeans_baseline(files, tmp_path):
    from mim_plugins.webapp.app import DemoApp

    mae, learner, _ = files
    app = DemoApp({'tiny': (MAE_CFG, mae)}, 'tiny', {'parts (7 learned parts)': learner},
                  roots=[ROOT, osp.dirname(learner[1])])
    source = app.pick_example('mnist_val_digit3')
    args = ['tiny', '', '', '', 'part-guided', 0.75, 0.5, 0.75, 0, -1, None]
    learned = app.update(source, *args, 'parts (7 learned parts)', '', '')
    assert learned[PANELS.index('learned parts')].shape == (134, 1164, 3)
    assert "part learner's argmax parts" in learned[-2]
    typed = app.update(source, *args, KMEANS, *learner)
    assert np.array_equal(typed[PANELS.index('part map')], learned[PANELS.index('part map')])
    baseline = app.update(source, *args)
    assert baseline[PANELS.index('learned parts')] is None and 'k-means baseline' in baseline[-2]

    def error(*chosen):
        out = app.update(source, *args, *chosen)
        assert all(p is None for p in out[:len(PANELS)])
        return out[-2]

    assert 'needs both a config file and a checkpoint file' in error(KMEANS, learner[0], '')
    assert 'does not open that part learner checkpoint' in error(KMEANS, learner[0],
                                                                 '/etc/passwd')
    assert "No part learner 'gone'" in error('gone', '', '')
    empty = DemoApp({'tiny': (MAE_CFG, mae)}, 'tiny')
    assert 'No part learner found under work_dirs/' in empty.update(source, *args, 'gone', '',
                                                                    '')[-2]
