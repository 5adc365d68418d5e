"""MAE reconstruction figures: masked patches hidden, visible patches pasted back unchanged."""
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from conftest import ROOT
from mim_plugins.visualization import mae_reconstruct, render_mae_reconstructions, save_grid

MAE_CFG = ROOT + '/configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'


def build_mae():
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(Config.fromfile(MAE_CFG).model)
    model.init_weights()
    return model


def test_reconstruction_respects_the_mask():
    torch.manual_seed(0)
    model = build_mae()
    x = torch.randn(3, 3, 28, 28)
    torch.manual_seed(1)
    out = mae_reconstruct(model, x)
    mask = out['mask']
    assert mask.shape == (3, 49) and (mask.sum(1) == 49 - 12).all()  # int(49 * 0.25) visible
    p = 4
    m = mask.view(3, 7, 7).repeat_interleave(p, 1).repeat_interleave(p, 2).unsqueeze(1).bool()
    m = m.expand_as(x)
    assert (out['masked'][m] == 0).all() and torch.equal(out['masked'][~m], x[~m])
    pasted = out['reconstruction + visible']
    assert torch.equal(pasted[~m], x[~m])
    assert torch.allclose(pasted[m], out['reconstruction'][m])
    # norm_pix: the decoder predicts each patch normalised by the original patch's mean/std,
    # so the figure undoes exactly that normalisation (same mask: same seed)
    torch.manual_seed(1)
    with torch.no_grad():
        latent, _, ids_restore = model.backbone(x)
        pred = model.neck(latent, ids_restore)
    patches = model.head.patchify(out['reconstruction'])
    target = model.head.patchify(x)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    assert torch.allclose((patches - mean) / (var + 1e-6)**.5, pred, atol=1e-4)


def test_save_grid_and_render(tmp_path):
    rows = [[np.full((28, 28, 3), v, np.uint8) for v in (0, 80, 160, 240)] for _ in range(2)]
    save_grid(rows, str(tmp_path / 'g.png'), cell=56, pad=4)
    img = Image.open(tmp_path / 'g.png')
    assert img.size == (4 * 60 + 4, 14 + 2 * 60 + 4)

    model = build_mae()
    ckpt = tmp_path / 'mae.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    paths = []
    for i in range(3):
        path = tmp_path / f'{i}.png'
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (28, 28), np.uint8)).save(path)
        paths.append(str(path))
    render_mae_reconstructions(MAE_CFG, str(ckpt), paths, str(tmp_path / 'fig.png'))
    fig = np.array(Image.open(tmp_path / 'fig.png'))
    assert fig.shape[0] == 14 + 3 * 116 + 4 and fig.shape[1] == 4 * 116 + 4
    # first column is the input image itself (gray, upscaled x4 from 28 to 112)
    first = fig[18:18 + 112, 4:4 + 112]
    want = np.array(Image.open(paths[0]).convert('RGB').resize((112, 112), Image.NEAREST))
    assert np.abs(first.astype(int) - want.astype(int)).max() <= 1
