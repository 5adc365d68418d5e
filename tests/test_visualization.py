"""Reconstruction figures: the algorithm's own ``reconstruct`` on the masks its config trains
with (MAE's random ones, SemMAE's part-guided ones at the checkpoint's λ), visible patches
pasted back unchanged, nothing drawn where the model predicts nothing (bottleneck MAE)."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from conftest import ROOT, make_part_maps, make_tiny_dataset, run_env
from mim_plugins.masking import lambda_schedule, random_mask
from mim_plugins.models.mask_generators import SemanticPartMaskGenerator
from mim_plugins.utils.errors import UserInputError
from mim_plugins.visualization import (can_reconstruct, load_model, masked_algorithm,
                                       reconstruction_columns, render_mae_reconstructions,
                                       save_grid)
from mim_plugins.visualization.part_masks import MASK_GRAY
from mim_plugins.visualization.reconstruction import config_masks, read_part_ids

MAE_CFG = ROOT + '/configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
SUPMAE_CFG = ROOT + '/configs/supmae/supmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
SEMMAE_CFG = ROOT + '/configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
VIS = ROOT + '/tools/visualization/vis_mae.py'
CELL, PAD, HEADER = 112, 4, 14  # save_grid's layout: 28 px images at 4x, 4 px patches = 16 px
MEAN = 33  # the MNIST preprocessor's mean, what a zeroed (hidden) patch un-normalises to


def bottleneck_config(tmp_path) -> str:
    """The tiny MAE with SemanticMIM's bottleneck decoder (2 cls tokens), as
    configs/mae/mae-bottleneck_* changes the ViT-B one."""
    path = tmp_path / 'mae-bottleneck_tiny.py'
    path.write_text(
        f"_base_ = ['{MAE_CFG}']\n"
        "model = dict(type='BottleneckMAE',\n"
        "             backbone=dict(type='BottleneckMAEViT', num_cls_tokens=2),\n"
        "             neck=dict(type='BottleneckMAEDecoder'))\n")
    return str(path)


def save_checkpoint(config: str, path, epoch=None, seed: int = 0) -> str:
    """A randomly initialised model of ``config`` built as training builds it (stock types
    stay stock), saved as tools/train.py does (``meta.epoch`` = epochs trained)."""
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config)
    model_cfg = cfg.model.copy()
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    meta = {} if epoch is None else {'epoch': epoch}
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, str(path))
    return str(path)


def write_images(folder, count: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(str(folder / f'{i}.png'))
        pixels = np.random.default_rng(i).integers(40, 255, (28, 28), np.uint8)  # never 33
        Image.fromarray(pixels).save(paths[-1])
    return paths


def cell_of(fig: np.ndarray, row: int, col: int) -> np.ndarray:
    top, left = HEADER + PAD + row * (CELL + PAD), PAD + col * (CELL + PAD)
    return fig[top:top + CELL, left:left + CELL]


def patches(picture: np.ndarray) -> np.ndarray:
    """(112, 112, 3) cell -> (49, 768): the 16 x 16 pixels of each of the 7x7 patches."""
    return picture.reshape(7, 16, 7, 16, 3).transpose(0, 2, 1, 3, 4).reshape(49, -1)


def figure_masks(fig: np.ndarray, rows: int) -> np.ndarray:
    """(rows, 49) bool: the patches the 'masked' column hides (the preprocessor's mean)."""
    return np.stack([(patches(cell_of(fig, r, 1)) == MEAN).all(1) for r in range(rows)])


def test_stock_types_are_built_as_ours():
    for stock, ours in (('MAE', 'MaskedMAE'), ('mmpretrain.MAE', 'MaskedMAE'),
                        ('MaskFeat', 'MaskedMaskFeat'), ('BEiT', 'MaskedBEiT')):
        cfg = dict(type=stock, backbone=dict(type='MAEViT', arch='b'))
        mapped = masked_algorithm(cfg)
        assert mapped['type'] == ours and cfg['type'] == stock  # a copy: the config unchanged
        # MAE's encoder becomes the one that takes the mask (same parameters); others keep theirs
        assert mapped['backbone']['type'] == ('SemMAEViT' if ours == 'MaskedMAE' else 'MAEViT')
        assert can_reconstruct(cfg)
    for kept in ('SupMAE', 'SemMAE', 'ImageClassifier'):
        assert masked_algorithm(dict(type=kept, backbone=dict(type='MAEViT')))['type'] == kept
    assert can_reconstruct(dict(type='SupMAE')) and can_reconstruct(dict(type='BottleneckMAE'))
    assert not can_reconstruct(dict(type='ImageClassifier'))
    assert not can_reconstruct(dict(type='NoSuchAlgorithm'))


def test_a_stock_mae_checkpoint_reconstructs_as_the_stock_mae(tmp_path):
    """Loaded for figures, a stock MAE is MaskedMAE; on MAE's own random mask its
    reconstruction is stock MAE's forward, norm_pix undone with each patch's statistics."""
    from mmpretrain.registry import MODELS
    ckpt = save_checkpoint(MAE_CFG, tmp_path / 'mae.pth')
    model, _ = load_model(MAE_CFG, ckpt)
    assert type(model).__name__ == 'MaskedMAE' and type(model.backbone).__name__ == 'SemMAEViT'
    stock = MODELS.build(Config.fromfile(MAE_CFG).model)
    stock.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'], strict=False)
    stock.eval()
    x = torch.randn(3, 3, 28, 28)
    torch.manual_seed(1)
    with torch.no_grad():
        latent, mask, ids_restore = stock.backbone(x)  # MAEViT's own random masking
        pred = stock.neck(latent, ids_restore)
    target = stock.head.patchify(x)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    want = stock.head.unpatchify(pred * (var + 1e-6)**.5 + mean)
    out = model.reconstruct(x, mask.bool())
    torch.testing.assert_close(out['pixels'], want, atol=1e-4, rtol=1e-4)
    assert out['where'].all()


def test_columns_paste_the_visible_patches(tmp_path):
    model, _ = load_model(MAE_CFG, save_checkpoint(MAE_CFG, tmp_path / 'mae.pth'))
    x = torch.randn(2, 3, 28, 28)
    mask = random_mask(2, 49, 0.75, generator=torch.Generator().manual_seed(0))
    columns = reconstruction_columns(model, x, mask)
    assert all(c.shape == (2, 28, 28, 3) and c.dtype == np.uint8 for c in columns.values())
    hidden = mask.view(2, 7, 7).repeat_interleave(4, 1).repeat_interleave(4, 2).numpy()
    original = columns['original']
    mean = model.data_preprocessor.mean.flatten().round().byte().numpy()
    assert (columns['masked'][hidden] == mean).all()
    assert np.array_equal(columns['masked'][~hidden], original[~hidden])
    pasted = columns['reconstruction + visible']
    assert np.array_equal(pasted[~hidden], original[~hidden])
    assert np.array_equal(pasted[hidden], columns['reconstruction'][hidden])
    assert not (columns['reconstruction'] == MASK_GRAY).all(-1).any()  # MAE predicts every patch


def test_bottleneck_columns_are_gray_outside_the_predicted_patches(tmp_path):
    config = bottleneck_config(tmp_path)
    model, _ = load_model(config, save_checkpoint(config, tmp_path / 'bottleneck.pth'))
    x = torch.randn(2, 3, 28, 28)
    mask = random_mask(2, 49, 0.75, generator=torch.Generator().manual_seed(0))
    columns = reconstruction_columns(model, x, mask)
    hidden = mask.view(2, 7, 7).repeat_interleave(4, 1).repeat_interleave(4, 2).numpy()
    recon = columns['reconstruction']
    assert (recon[~hidden] == MASK_GRAY).all()
    assert not (recon[hidden] == MASK_GRAY).all(-1).all()
    pasted = columns['reconstruction + visible']
    assert np.array_equal(pasted[~hidden], columns['original'][~hidden])
    assert np.array_equal(pasted[hidden], recon[hidden])


def test_masks_follow_the_config_and_the_seed(tmp_path):
    """No MaskingDataPreprocessor: MAE's random masks at the encoder's ratio from the seed;
    SemMAE's: its SemanticPartMaskGenerator on the part ids, at the λ of the epoch."""
    ckpt = save_checkpoint(MAE_CFG, tmp_path / 'mae.pth')
    model, cfg = load_model(MAE_CFG, ckpt)
    mask, input_mask, note = config_masks(model, cfg, ckpt, None, 3, seed=4)
    assert input_mask is None and 'random, ratio 0.75' in note
    assert torch.equal(mask, random_mask(3, 49, 0.75, generator=torch.Generator().manual_seed(4)))
    assert not torch.equal(config_masks(model, cfg, ckpt, None, 3, seed=5)[0], mask)

    ckpt = save_checkpoint(SEMMAE_CFG, tmp_path / 'semmae.pth', epoch=5)
    model, cfg = load_model(SEMMAE_CFG, ckpt)
    part_ids = torch.from_numpy(np.random.default_rng(0).integers(0, 7, (2, 7, 7)))
    for epoch, at in ((None, 4), (14, 14)):  # default: the last epoch trained, 0-based
        mask, _, note = config_masks(model, cfg, ckpt, part_ids, 2, seed=4, epoch=epoch)
        lam = lambda_schedule(at, 15, 'square')
        want = SemanticPartMaskGenerator(0.75, 'constant', lam_value=lam)(
            2, part_ids, None, torch.Generator().manual_seed(4))
        assert torch.equal(mask, want.flatten(1))
        assert f'SemanticPartMaskGenerator, λ={lam:.2f}, epoch {at} of 15' in note
    with pytest.raises(UserInputError, match=r'needs part maps.*Fix: pass --part-root'):
        config_masks(model, cfg, ckpt, None, 2, seed=4)
    with pytest.raises(UserInputError, match=r'Epoch 15 is outside.*0\.\.14'):
        config_masks(model, cfg, ckpt, part_ids, 2, seed=4, epoch=15)


@pytest.mark.parametrize('config', [MAE_CFG, SUPMAE_CFG, 'bottleneck'])
def test_every_mae_family_config_draws_its_figure(tmp_path, config):
    config = bottleneck_config(tmp_path) if config == 'bottleneck' else config
    ckpt = save_checkpoint(config, tmp_path / 'model.pth')
    images = write_images(tmp_path / 'images', 3)
    note = render_mae_reconstructions(config, ckpt, images, str(tmp_path / 'fig.png'), seed=2)
    fig = np.array(Image.open(tmp_path / 'fig.png').convert('RGB'))
    assert fig.shape == (HEADER + 3 * (CELL + PAD) + PAD, 4 * (CELL + PAD) + PAD, 3)
    want = random_mask(3, 49, 0.75, generator=torch.Generator().manual_seed(2)).numpy()
    assert np.array_equal(figure_masks(fig, 3), want) and 'seed 2' in note
    for row, path in enumerate(images):  # the first column is the input itself
        image = np.array(Image.open(path).convert('RGB').resize((CELL, CELL), Image.NEAREST))
        assert np.abs(cell_of(fig, row, 0).astype(int) - image).max() <= 1


def load_vis_tool():
    spec = importlib.util.spec_from_file_location('vis_mae', VIS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def semmae_data(tmp_path, monkeypatch):
    """A working directory laid out as the SemMAE config reads it (data/mnist5k/train and its
    part maps), a checkpoint of 5 trained epochs, and two train images."""
    make_tiny_dataset(str(tmp_path / "data" / "mnist5k"))
    make_part_maps(str(tmp_path / 'data/mnist5k/train'),
                   str(tmp_path / 'data/mnist5k/part_maps/train'), grid=7, num_parts=7)
    monkeypatch.chdir(tmp_path)
    ckpt = save_checkpoint(SEMMAE_CFG, tmp_path / 'semmae.pth', epoch=5)
    images = sorted(str(p.relative_to(tmp_path)) for p in
                    (tmp_path / 'data/mnist5k/train').rglob('*.png'))[:2]
    return tmp_path, ckpt, images


def semmae_masks(cfg_dir, images, seed: int, epoch: int) -> np.ndarray:
    """What SemMAE's generator draws at ``epoch`` from the images' part maps."""
    cfg = Config.fromfile(SEMMAE_CFG)
    ids = read_part_ids(cfg, [str(cfg_dir / p) for p in images], (7, 7),
                        str(cfg_dir / 'data/mnist5k/part_maps/train'),
                        str(cfg_dir / 'data/mnist5k/train'))
    generator = SemanticPartMaskGenerator(0.75, 'square')
    generator.set_epoch(epoch, 15)
    return generator(len(images), ids, None, torch.Generator().manual_seed(seed)).flatten(
        1).numpy()


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_vis_mae_draws_semmae_with_its_part_guided_masks(semmae_data):
    root, ckpt, images = semmae_data
    out = root / 'fig.png'
    result = subprocess.run([sys.executable, VIS, SEMMAE_CFG, ckpt, *images, '--out', str(out),
                             '--seed', '3'], cwd=root, env=run_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'SemanticPartMaskGenerator, λ=0.89, epoch 4 of 15, seed 3' in result.stdout
    fig = np.array(Image.open(out).convert('RGB'))
    # the config's own masks: its LoadPartMap's maps, the λ of the checkpoint's last epoch
    assert np.array_equal(figure_masks(fig, 2), semmae_masks(root, images, 3, 4))
    tool = load_vis_tool()
    other = root / 'other.png'
    tool.main([SEMMAE_CFG, ckpt, *images, '--out', str(other), '--seed', '4'])
    moved = np.array(Image.open(other).convert('RGB'))
    assert np.array_equal(figure_masks(moved, 2), semmae_masks(root, images, 4, 4))
    assert not np.array_equal(moved, fig)  # another seed, other masks, another figure
    tool.main([SEMMAE_CFG, ckpt, *images, '--out', str(other), '--seed', '3', '--epoch', '14'])
    late = np.array(Image.open(other).convert('RGB'))  # λ=0: whole parts masked
    assert np.array_equal(figure_masks(late, 2), semmae_masks(root, images, 3, 14))
    assert not np.array_equal(figure_masks(late, 2), figure_masks(fig, 2))  # λ matters


def test_vis_mae_part_maps_from_the_command_line_or_a_clear_error(semmae_data):
    root, ckpt, images = semmae_data
    elsewhere = write_images(root / 'photos', 1)
    tool = load_vis_tool()
    with pytest.raises(UserInputError, match=r"not under img_prefix.*Fix:"):
        tool.main([SEMMAE_CFG, ckpt, *elsewhere, '--out', str(root / 'x.png')])
    with pytest.raises(UserInputError, match=r"No part map for image.*Fix:"):
        tool.main([SEMMAE_CFG, ckpt, *elsewhere, '--out', str(root / 'x.png'),
                   '--part-root', str(root / 'maps'), '--img-prefix', str(root / 'photos')])
    with pytest.raises(UserInputError, match='go together'):
        tool.main([SEMMAE_CFG, ckpt, *elsewhere, '--out', str(root / 'x.png'),
                   '--part-root', str(root / 'maps')])
    assert not (root / 'x.png').exists()
    make_part_maps(str(root / 'photos'), str(root / 'maps'), grid=7, num_parts=7)
    tool.main([SEMMAE_CFG, ckpt, *elsewhere, '--out', str(root / 'x.png'),
               '--part-root', str(root / 'maps'), '--img-prefix', str(root / 'photos')])
    assert (root / 'x.png').is_file()


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_vis_mae_draws_the_bottleneck_mae(tmp_path):
    config = bottleneck_config(tmp_path)
    ckpt = save_checkpoint(config, tmp_path / 'bottleneck.pth')
    images = write_images(tmp_path / 'images')
    out = tmp_path / 'fig.png'
    result = subprocess.run([sys.executable, VIS, config, ckpt, *images, '--out', str(out),
                             '--seed', '1'], cwd=ROOT, env=run_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    fig = np.array(Image.open(out).convert('RGB'))
    hidden = figure_masks(fig, 2)
    assert np.array_equal(hidden, random_mask(2, 49, 0.75,
                                              generator=torch.Generator().manual_seed(1)).numpy())
    for row in range(2):
        recon = patches(cell_of(fig, row, 2)).reshape(49, -1, 3)
        gray = (recon == MASK_GRAY).all(-1).all(-1)
        assert np.array_equal(gray, ~hidden[row])  # predictions only at the masked patches
        pasted = patches(cell_of(fig, row, 3))
        assert np.array_equal(pasted[~hidden[row]], patches(cell_of(fig, row, 0))[~hidden[row]])
        assert np.array_equal(pasted[hidden[row]], recon.reshape(49, -1)[hidden[row]])


def test_save_grid(tmp_path):
    rows = [[np.full((28, 28, 3), v, np.uint8) for v in (0, 80, 160, 240)] for _ in range(2)]
    save_grid(rows, str(tmp_path / 'g.png'), cell=56, pad=4)
    img = Image.open(tmp_path / 'g.png')
    assert img.size == (4 * 60 + 4, 14 + 2 * 60 + 4)
