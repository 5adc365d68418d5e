"""MultiClsTokenViT runs the sequence SemanticMIM pretrained with N cls tokens; the relative
position bias resize that lets BEiT checkpoints load at another input size (ResizableBEiTViT)."""
import numpy as np
import pytest
import scipy
import torch
from mmpretrain.models import VisionTransformer

from mim_plugins.models.backbones import MultiClsTokenViT, ResizableBEiTViT
from mim_plugins.models.backbones.rel_pos_bias import (resize_beit_table,
                                                      resize_relative_position_bias_table,
                                                      stretched_offsets)

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _vit(cls=VisionTransformer, **kwargs):
    torch.manual_seed(0)
    model = cls(arch=ARCH, img_size=32, patch_size=8, out_type='featmap', final_norm=False,
                **kwargs)
    model.init_weights()
    model.eval()  # (mmpretrain's backbones return None from train())
    return model


def test_one_cls_token_is_the_stock_vit():
    stock, ours = _vit(), _vit(MultiClsTokenViT, num_cls_tokens=1)
    ours.load_state_dict(stock.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x)[0], stock(x)[0])


def test_extra_cls_tokens_follow_the_cls_token_with_their_position_rows():
    ours = _vit(MultiClsTokenViT, num_cls_tokens=3, out_indices=[0, 1])
    assert ours.extra_cls_tokens.shape == ours.extra_cls_pos_embed.shape == (1, 2, 32)
    x = torch.randn(2, 3, 32, 32)
    # by hand: [cls + pos_0, extra tokens + their rows, patches + pos], then the stock blocks
    patches, hw = ours.patch_embed(x)
    pos = ours.pos_embed
    extra = ours.extra_cls_tokens + ours.extra_cls_pos_embed
    seq = torch.cat([(ours.cls_token + pos[:, :1]).expand(2, -1, -1),
                     extra.expand(2, -1, -1), patches + pos[:, 1:]], 1)
    outs = []
    for layer in ours.layers:
        seq = layer(seq)
        outs.append(seq[:, 3:].reshape(2, *hw, -1).permute(0, 3, 1, 2))
    for got, expected in zip(ours(x), outs):
        assert got.shape == (2, 32, 4, 4)
        torch.testing.assert_close(got, expected)
    # the patch features depend on the extra tokens
    before = ours(x)[1].clone()
    with torch.no_grad():
        ours.extra_cls_tokens.add_(1.0)
    assert not torch.allclose(ours(x)[1], before)


def test_same_sequence_as_the_bottleneck_pretraining_encoder():
    """The lead's BottleneckMAEViT with nothing masked runs [N cls tokens, all patches]: the
    same tokens, hence the same outputs, as MultiClsTokenViT with its weights."""
    from mim_plugins.models.bottleneck_mae import BottleneckMAEViT
    torch.manual_seed(0)
    pre = BottleneckMAEViT(arch=ARCH, img_size=32, patch_size=8, num_cls_tokens=4)
    pre.init_weights()
    pre.eval()
    with torch.no_grad():
        pre.extra_cls_tokens.normal_()
    ours = MultiClsTokenViT(arch=ARCH, img_size=32, patch_size=8, num_cls_tokens=4,
                            out_type='raw')
    ours.eval()
    assert 'extra_cls_pos_embed' not in pre.state_dict()  # MAE's positions are fixed
    result = ours.load_state_dict(pre.state_dict(), strict=False)
    assert result.missing_keys == []  # no position rows: rows of zeros
    assert torch.all(ours.extra_cls_pos_embed == 0)
    x = torch.randn(2, 3, 32, 32)
    main, _ = pre.forward_streams(x, None, torch.zeros(2, 16, dtype=torch.bool))
    raw = ours(x)[0]  # (B, 1 + L, C): the extra cls tokens are left out
    torch.testing.assert_close(raw[:, 0], main[:, 0])
    torch.testing.assert_close(raw[:, 1:], main[:, 4:])


def test_extra_cls_tokens_are_frozen_and_in_the_stem():
    frozen = _vit(MultiClsTokenViT, num_cls_tokens=8, frozen_stages=2)
    assert not frozen.extra_cls_tokens.requires_grad and not frozen.cls_token.requires_grad
    assert not frozen.extra_cls_pos_embed.requires_grad
    trainable = _vit(MultiClsTokenViT, num_cls_tokens=8)
    assert trainable.extra_cls_tokens.requires_grad and trainable.extra_cls_pos_embed.requires_grad
    assert trainable.extra_cls_tokens.std() > 0  # initialised like the cls token
    assert trainable.extra_cls_pos_embed.std() > 0  # and like the position embedding
    assert trainable.get_layer_depth('backbone.extra_cls_tokens', 'backbone.') == (0, 4)
    assert trainable.get_layer_depth('backbone.extra_cls_pos_embed', 'backbone.') == (0, 4)
    assert trainable.get_layer_depth('backbone.layers.1.ln1.weight', 'backbone.') == (2, 4)
    with pytest.raises(ValueError, match='num_cls_tokens >= 1'):
        MultiClsTokenViT(arch=ARCH, num_cls_tokens=0)


def test_stretched_offsets_keep_the_near_ones_and_reach_the_new_range():
    offsets = stretched_offsets(27, 79)
    assert len(offsets) == 27 and offsets[13] == 0
    np.testing.assert_allclose(offsets, -offsets[::-1])
    np.testing.assert_allclose(offsets[12:15], [-1, 0, 1])
    assert abs(offsets[-1] - 39) < 1e-3 and (np.diff(offsets[13:], 2) > 0).all()


def test_rel_pos_bias_resize_interpolates_bicubically_on_the_stretched_offsets():
    """A bicubic spline reproduces a polynomial of degree <= 3 in each offset: sampled at the
    stretched source offsets, it must come back exactly at the target's integer offsets, in
    BEiT's layout (row offset major, column offset minor)."""
    src, dst = 27, 79
    pos = stretched_offsets(src, dst)
    rows, cols = np.meshgrid(pos, pos, indexing='ij')

    def poly(r, c, head):
        return 0.3 + 0.02 * r - 0.05 * c + 1e-3 * r * c ** 2 + 1e-4 * (head + 1) * r ** 3

    table = torch.tensor(np.stack([poly(rows, cols, h).ravel() for h in range(3)], 1),
                         dtype=torch.float64)
    out = resize_relative_position_bias_table(src, dst, table, 3)
    assert out.shape == (dst * dst, 3) and out.dtype == torch.float64
    grid = np.arange(-(dst // 2), dst // 2 + 1, dtype=float)
    r, c = np.meshgrid(grid, grid, indexing='ij')
    for head in range(3):
        np.testing.assert_allclose(out[:, head].numpy(), poly(r, c, head).ravel(),
                                   rtol=1e-6, atol=1e-6)


def _beit_224(**position):
    """A BEiT pretraining encoder at 224x224 (14x14 patches: tables of 27 ** 2 + 3 rows), with
    random tables (they are built as zeros)."""
    from mmpretrain.models.selfsup.beit import BEiTPretrainViT
    torch.manual_seed(0)
    model = BEiTPretrainViT(arch=ARCH, img_size=224, patch_size=16, **position)
    for name, table in model.named_parameters():
        if 'relative_position_bias_table' in name:
            torch.nn.init.normal_(table, std=0.5)
    return model


def test_beit_checkpoint_loads_at_another_input_size():
    """A 224-pretrained shared table goes into every block of a 320x320 model (20x20 patches:
    39 ** 2 + 3 rows), resized by the pure function; the stock BEiTViT cannot on SciPy >= 1.14."""
    from mmpretrain.models import BEiTViT
    pre = _beit_224(use_shared_rel_pos_bias=True, use_rel_pos_bias=False)
    shared = pre.rel_pos_bias.relative_position_bias_table.detach()
    expected = torch.cat([resize_relative_position_bias_table(27, 39, shared[:-3], 2),
                          shared[-3:]])
    torch.testing.assert_close(resize_beit_table(shared, 39 ** 2 + 3), expected)
    options = dict(arch=ARCH, img_size=320, patch_size=16, out_type='featmap',
                   use_rel_pos_bias=True)
    ours = ResizableBEiTViT(**options)
    result = ours.load_state_dict(pre.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ['layers.0.attn.relative_position_index',
                                           'layers.1.attn.relative_position_index']
    for layer in ours.layers:
        torch.testing.assert_close(layer.attn.relative_position_bias_table.detach(), expected)
    assert ours(torch.randn(1, 3, 320, 320))[0].shape == (1, 32, 20, 20)

    if tuple(map(int, scipy.__version__.split('.')[:2])) >= (1, 14):
        with pytest.raises(NotImplementedError, match='interp2d'):
            BEiTViT(**options).load_state_dict(pre.state_dict(), strict=False)


def test_beit_tables_resize_under_a_prefix_as_in_a_whole_model_checkpoint():
    """Loading a segmentor's checkpoint ('backbone.' keys): the per-block tables are resized,
    and a shared one is found under the prefix too (the stock hook looks for it unprefixed)."""
    for position in (dict(use_shared_rel_pos_bias=True, use_rel_pos_bias=False),
                     dict(use_shared_rel_pos_bias=False, use_rel_pos_bias=True)):
        pre = _beit_224(**position)
        source = {f'backbone.{k}': v for k, v in pre.state_dict().items()}
        model = torch.nn.ModuleDict(dict(backbone=ResizableBEiTViT(
            arch=ARCH, img_size=320, patch_size=16, use_rel_pos_bias=True)))
        model.load_state_dict(source, strict=False)
        for i, layer in enumerate(model.backbone.layers):
            table = source.get('backbone.rel_pos_bias.relative_position_bias_table',
                               source.get(f'backbone.layers.{i}.attn.relative_position_bias_table'))
            torch.testing.assert_close(layer.attn.relative_position_bias_table.detach(),
                                       resize_beit_table(table, 39 ** 2 + 3))
