"""The web demo opens the photo job: its checkpoint in the list, its test photos as examples,
and a 64x64 colour photo drawn through the 16x16-patch model (masks, reconstruction, attention)."""
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from conftest import PHOTO_COLOURS, ROOT

PHOTO_CFG = ROOT + '/configs/mae/mae_vit-tiny-p16_1xb64-coslr-40e_groceries-64px.py'


@pytest.fixture(scope='module')
def photo_ckpt(tmp_path_factory) -> str:
    """The photo job's MAE at its random initialisation (the drawing, not the weights, is
    under test)."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(PHOTO_CFG).model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('photo_webapp') / 'mae.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def test_examples_add_the_written_test_photos(tiny_photos, tmp_path):
    from mim_plugins.webapp import examples
    shipped = examples(str(tmp_path / 'not_written'))
    assert all(name.startswith('mnist') for name in shipped)
    found = examples(tiny_photos + 'test')
    photos = {k: v for k, v in found.items() if k not in shipped}
    assert list(photos) == ['groceries_Apple']  # every third class of ['Apple', 'Pear']
    assert osp.dirname(photos['groceries_Apple']) == tiny_photos + 'test/Apple'


def test_the_photo_checkpoint_is_listed_second(tmp_path, photo_ckpt, monkeypatch):
    from mim_plugins.webapp import checkpoints
    work = tmp_path / 'work_dirs'
    run = work / 'demo_photos' / 'mae_pretrain'
    run.mkdir(parents=True)
    shutil.copy(photo_ckpt, run / 'epoch_40.pth')
    (run / 'last_checkpoint').write_text(str(run / 'epoch_40.pth'))
    Config.fromfile(PHOTO_CFG).dump(str(run / osp.basename(PHOTO_CFG)))
    monkeypatch.setattr(checkpoints, 'PHOTO_WORK_DIR', str(run))
    monkeypatch.setattr(checkpoints, 'DEMO_WORK_DIR', str(tmp_path / 'no_main_job'))
    found = checkpoints.find_checkpoints(str(work))
    # the named entry, and not a second time from the work-dir scan
    assert found == {checkpoints.PHOTO_LABEL: (PHOTO_CFG, str(run / 'epoch_40.pth'))}


def test_a_photo_is_drawn_through_the_photo_model(tiny_photos, photo_ckpt):
    from mim_plugins.webapp import Request, compute_views
    from mim_plugins.webapp.views import examples
    photo = examples(tiny_photos + 'test')['groceries_Apple']
    views = compute_views(Request(image=photo, config=PHOTO_CFG, checkpoint=photo_ckpt))
    assert views.grid == (4, 4)  # 64x64 in 16x16 patches
    shown = views.panels['input']
    assert shown.ndim == 3 and shown.shape[2] == 3
    red, green = PHOTO_COLOURS['Apple'][:2]
    assert red > green and shown[..., 0].mean() > shown[..., 1].mean() + 50  # colour kept
    for panel in ('masked input', 'reconstruction', 'reconstruction + visible', 'attention'):
        assert isinstance(views.panels[panel], np.ndarray), panel
    assert any('12 of 16 patches hidden' in n for n in views.notes)
