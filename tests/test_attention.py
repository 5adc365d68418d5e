"""Attention maps of query patches: recomputed probabilities equal what the modules compute."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from conftest import ROOT, run_env
from mim_plugins.utils.errors import UserInputError
from mim_plugins.visualization.attention import (QUERY_RED, attention_maps, draw_query_box,
                                                 patch_grid, query_attention, render_attention)

MAE_CFG = ROOT + '/configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
MAE_BASE_CFG = ROOT + '/configs/mae/mae_vit-base-p16_8xb512-coslr-800e_in1k.py'
TINY = dict(embed_dims=16, num_layers=2, num_heads=2, feedforward_channels=32)


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn from N(0, 0.5²): zero-initialised biases and relative position
    tables would hide a term the recomputation forgot."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    module.eval()
    return module


def build(kind: str) -> torch.nn.Module:
    from mmpretrain.models import BEiTViT, MAEViT
    if kind == 'mae':
        return randomise(MAEViT(arch=TINY, img_size=16, patch_size=4))
    return randomise(BEiTViT(arch=TINY, img_size=16, patch_size=4, layer_scale_init_value=0.1,
                             use_rel_pos_bias=kind == 'beit-own',
                             use_shared_rel_pos_bias=kind == 'beit-shared'))


def test_one_layer_vit_by_hand():
    from mmpretrain.models import VisionTransformer
    vit = randomise(VisionTransformer(arch=dict(embed_dims=8, num_layers=1, num_heads=2,
                                                feedforward_channels=16),
                                      img_size=8, patch_size=4))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    # the ViT's first layer, written out: patches, cls token, position, LayerNorm, q and k
    proj = vit.patch_embed.projection
    tokens = F.conv2d(x, proj.weight, proj.bias, stride=4).flatten(2).transpose(1, 2)
    tokens = torch.cat([vit.cls_token.expand(2, -1, -1), tokens], 1) + vit.pos_embed
    ln = vit.layers[0].ln1
    tokens = F.layer_norm(tokens, (8, ), ln.weight, ln.bias, ln.eps)
    w, b = vit.layers[0].attn.qkv.weight, vit.layers[0].attn.qkv.bias
    want = torch.empty(2, 2, 5, 5)
    for head in range(2):
        dims = slice(4 * head, 4 * head + 4)
        q = tokens @ w[:8][dims].T + b[:8][dims]
        k = tokens @ w[8:16][dims].T + b[8:16][dims]
        want[:, head] = torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1)  # sqrt(4) = 2
    got = attention_maps(vit, x, layer=0)
    assert got.shape == (2, 2, 5, 5)
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize('kind', ['mae', 'beit-own', 'beit-shared'])
def test_probabilities_reproduce_the_module_output(kind):
    """softmax rows sum to 1, and (probabilities @ v) through the output projection gives the
    module's own output: q/v biases and both relative position biases are all accounted for."""
    vit = build(kind)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    attn_module = vit.layers[-1].attn
    seen = {}

    def keep(module, args, kwargs, output):
        seen['x'], seen['out'] = args[0], output

    handle = attn_module.register_forward_hook(keep, with_kwargs=True)
    probs = attention_maps(vit, x)
    handle.remove()
    tokens = 1 + 16
    assert probs.shape == (3, 2, tokens, tokens)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 2, tokens), atol=1e-5)
    assert (probs >= 0).all()
    inp = seen['x']
    if kind == 'mae':
        v = attn_module.qkv(inp)[..., 32:]
    else:
        v = F.linear(inp, attn_module.qkv.weight[32:], attn_module.v_bias)
    v = v.reshape(3, tokens, 2, 8).transpose(1, 2)
    out = attn_module.proj((probs @ v).transpose(1, 2).reshape(3, tokens, 16))
    if kind == 'mae':
        out = attn_module.gamma1(out)
    assert torch.allclose(out, seen['out'], atol=1e-4)
    # a wrong bias breaks it: dropping the relative position bias changes the probabilities
    if kind == 'beit-own':
        table = attn_module.relative_position_bias_table
        with torch.no_grad():
            table.zero_()
        assert not torch.allclose(attention_maps(vit, x), probs, atol=1e-3)


def test_layers_differ_and_bad_layer_is_explained():
    vit = build('mae')
    x = torch.randn(1, 3, 16, 16)
    assert not torch.allclose(attention_maps(vit, x, 0), attention_maps(vit, x, 1))
    assert torch.equal(attention_maps(vit, x, 1), attention_maps(vit, x, -1))
    with pytest.raises(UserInputError, match=r'Layer 2 does not exist.*0\.\.1'):
        attention_maps(vit, x, 2)


def test_query_attention_reads_the_query_row():
    grid, extra = (3, 4), 1
    n = extra + 12
    i = torch.arange(n).view(n, 1).float()
    j = torch.arange(n).view(1, n).float()
    per_head = torch.stack([i * 1000 + j, i * 1000 + j + 10])  # head 1 = head 0 + 10
    attn = per_head.unsqueeze(0)  # (1, 2 heads, n, n)
    got = query_attention(attn, (2, 1), grid)[0]
    token = extra + 2 * 4 + 1
    want = token * 1000 + extra + torch.arange(12).view(3, 4).float() + 5  # head mean: +5
    assert torch.equal(got, want)
    assert torch.equal(query_attention(attn, (2, 1), grid, head=1)[0], want + 5)
    with pytest.raises(UserInputError, match=r'\(3, 0\) is outside the 3x4 patch grid'):
        query_attention(attn, (3, 0), grid)


def test_query_box_surrounds_the_patch():
    image = np.zeros((28, 28, 3), np.uint8)
    boxed = draw_query_box(image, (2, 5), (7, 7))
    red = np.all(boxed == QUERY_RED, axis=-1)
    ys, xs = np.nonzero(red)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (8, 11, 20, 23)
    assert not red[9:11, 21:23].any()  # only the outline
    assert not image.any()  # the input is untouched


def save_tiny_mae(path: str) -> None:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(MAE_CFG).model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_cli_figure_and_errors(tmp_path):
    ckpt = str(tmp_path / 'mae.pth')
    save_tiny_mae(ckpt)
    images = []
    for i in range(2):
        path = tmp_path / f'{i}.png'
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (28, 28), np.uint8)).save(path)
        images.append(str(path))
    out = tmp_path / 'figs' / 'attn.png'
    cmd = [sys.executable, 'tools/visualization/vis_attention.py', MAE_CFG, ckpt, *images,
           '--query', '1', '2', '--query', '6', '6', '--out', str(out)]
    result = subprocess.run(cmd, cwd=ROOT, env=run_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    fig = np.array(Image.open(out).convert('RGB'))
    # 2 images x 2 queries = 4 rows of 3 cells (save_grid: 112 px cells, 4 px pads, 14 px header)
    assert fig.shape == (14 + 4 * 116 + 4, 3 * 116 + 4, 3)
    # row 2 (image 0, query (6, 6)): the red box sits in the bottom-right patch of cell 0
    top, left = 14 + 4 + 116, 4
    cell = fig[top:top + 112, left:left + 112]
    red = np.all(cell == QUERY_RED, axis=-1)
    ys, xs = np.nonzero(red)
    assert ys.min() == 6 * 112 // 7 and xs.min() == 6 * 112 // 7

    bad = subprocess.run(cmd[:-5] + ['--query', '7', '0', '--out', str(out)], cwd=ROOT,
                         env=run_env(), capture_output=True, text=True)
    assert bad.returncode == 2
    assert 'outside the 7x7 patch grid' in bad.stderr and 'Traceback' not in bad.stderr

    with pytest.raises(UserInputError, match='another architecture.*pos_embed'):
        render_attention(MAE_BASE_CFG, ckpt, images, [(0, 0)], str(tmp_path / 'x.png'))
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'not an image')
    with pytest.raises(UserInputError, match='Corrupt or unreadable image'):
        render_attention(MAE_CFG, ckpt, [str(corrupt)], [(0, 0)], str(tmp_path / 'x.png'))
    assert not os.path.exists(tmp_path / 'x.png')


def test_patch_grid_of_the_demo_vit():
    from mmpretrain.models import MAEViT
    assert patch_grid(MAEViT(arch=TINY, img_size=28, patch_size=4)) == (7, 7)
