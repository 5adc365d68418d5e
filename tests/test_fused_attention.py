"""The fused BEiT layer and MaskedBEiTViT give mmpretrain's outputs and gradients."""
import pytest
import torch
from mmpretrain.models.selfsup.beit import BEiTPretrainViT

import mim_plugins  # noqa: F401
from mim_plugins.masking import random_mask
from mim_plugins.models.fused_attention import beit_layer
from mim_plugins.models.masked_beit import MaskedBEiTViT

ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
POSITIONS = {
    'shared': dict(use_abs_pos_emb=False, use_rel_pos_bias=False, use_shared_rel_pos_bias=True),
    'per-layer': dict(use_abs_pos_emb=False, use_rel_pos_bias=True,
                      use_shared_rel_pos_bias=False),
    'absolute': dict(use_abs_pos_emb=True, use_rel_pos_bias=False,
                     use_shared_rel_pos_bias=False),
}


def assert_same_grads(ours: torch.nn.Module, stock: torch.nn.Module) -> None:
    """Every parameter of ``ours`` has the gradient of ``stock``'s parameter by that name."""
    theirs = dict(stock.named_parameters())
    for name, param in ours.named_parameters():
        if theirs[name].grad is None:
            assert param.grad is None, name
            continue
        torch.testing.assert_close(param.grad, theirs[name].grad, atol=1e-6, rtol=1e-4,
                                   msg=name)


def pair(position: str, **kwargs):
    torch.manual_seed(0)
    stock = BEiTPretrainViT(arch=ARCH, img_size=32, patch_size=8, **POSITIONS[position], **kwargs)
    stock.init_weights()
    with torch.no_grad():  # nothing left at its zero init: every parameter matters
        for p in stock.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = MaskedBEiTViT(arch=ARCH, img_size=32, patch_size=8, **POSITIONS[position], **kwargs)
    ours.load_state_dict(stock.state_dict())
    return stock, ours


@pytest.mark.parametrize('position', sorted(POSITIONS))
@pytest.mark.parametrize('scale', [0.1, 0.0])  # with and without layer scale
def test_fused_layer_equals_the_stock_layer(position, scale):
    stock, _ = pair(position, layer_scale_init_value=scale)
    layer = stock.layers[0]
    x = torch.randn(3, 17, 32)
    bias = stock.rel_pos_bias() if stock.rel_pos_bias is not None else None
    torch.testing.assert_close(beit_layer(layer, x, bias), layer(x, rel_pos_bias=bias))
    per_image = torch.randn(3, 4, 17, 17)  # the bottleneck's per-image subset of the bias
    if layer.attn.relative_position_bias_table is None:
        torch.testing.assert_close(beit_layer(layer, x, per_image),
                                   layer(x, rel_pos_bias=per_image))


@pytest.mark.parametrize('position', sorted(POSITIONS))
def test_masked_beit_vit_encodes_as_the_stock_forward(position):
    stock, ours = pair(position, layer_scale_init_value=0.1)
    x = torch.randn(2, 3, 32, 32)
    mask = random_mask(2, 16, 0.5)
    full = stock(x, mask)[0]
    encoding = ours.encode(x, mask)
    torch.testing.assert_close(encoding.main, full)
    torch.testing.assert_close(encoding.predicted, full[:, 1:][mask].view(2, 8, 32))
    assert encoding.num_cls == 1 and torch.equal(encoding.main_mask, mask)
    # the same gradients for every parameter
    (full[:, 1:][mask] ** 2).mean().backward()
    (encoding.predicted ** 2).mean().backward()
    assert_same_grads(ours, stock)
    # another mask, other rows
    assert not torch.allclose(ours.encode(x, ~mask).predicted, encoding.predicted)


@pytest.mark.parametrize('position', sorted(POSITIONS))
def test_fused_layer_on_some_rows_equals_those_rows_of_the_full_layer(position):
    """``rows``: queries at those rows only, keys and values at all; the rows of the full
    output, for the layer's own bias, the shared one and a per-image one."""
    stock, _ = pair(position, layer_scale_init_value=0.1)
    layer = stock.layers[0]
    x = torch.randn(3, 17, 32)
    rows = torch.tensor([[0, 3, 9], [1, 2, 16], [5, 6, 7]])
    biases = [stock.rel_pos_bias() if stock.rel_pos_bias is not None else None]
    if layer.attn.relative_position_bias_table is None:
        biases.append(torch.randn(3, 4, 17, 17))
    for bias in biases:
        full = layer(x, rel_pos_bias=bias)
        some = beit_layer(layer, x, bias, rows=rows)
        torch.testing.assert_close(some, full.gather(1, rows[..., None].expand(-1, -1, 32)))
        # the other rows' keys and values still count: change a row no query reads
        other = x.clone()
        other[:, 4] += torch.randn(32)  # (a constant would vanish in the LayerNorm)
        assert not torch.allclose(beit_layer(layer, other, bias, rows=rows), some)


@pytest.mark.parametrize('position', sorted(POSITIONS))
def test_predicted_only_encoding_equals_the_full_one(position):
    """``encode(..., main=False)`` runs the last layer on the predicted rows alone: the same
    ``predicted`` and the same gradients as the stock forward, and no ``main``."""
    stock, ours = pair(position, layer_scale_init_value=0.1)
    x = torch.randn(2, 3, 32, 32)
    mask = random_mask(2, 16, 0.5)
    full = stock(x, mask)[0]
    encoding = ours.encode(x, mask, main=False)
    assert encoding.main is None
    torch.testing.assert_close(encoding.predicted, full[:, 1:][mask].view(2, 8, 32))
    torch.testing.assert_close(encoding.predicted, ours.encode(x, mask).predicted)
    (full[:, 1:][mask] ** 2).mean().backward()
    (encoding.predicted ** 2).mean().backward()
    assert_same_grads(ours, stock)


def maskfeat_pair():
    from mmpretrain.models.selfsup.maskfeat import MaskFeatViT

    from mim_plugins.models.masked_maskfeat import MaskedMaskFeatViT
    torch.manual_seed(0)
    kwargs = dict(arch=ARCH, img_size=32, patch_size=8, drop_path_rate=0.0)
    stock = MaskFeatViT(**kwargs)
    stock.init_weights()
    with torch.no_grad():
        for p in stock.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = MaskedMaskFeatViT(**kwargs)
    ours.load_state_dict(stock.state_dict())
    return stock, ours


@pytest.mark.parametrize('main', [True, False])
def test_masked_maskfeat_vit_encodes_as_the_stock_forward(main):
    """Both ways (``main=False``: the last layer on the predicted rows alone) the predicted rows
    and every gradient equal the stock masked forward's."""
    stock, ours = maskfeat_pair()
    x = torch.randn(2, 3, 32, 32)
    mask = random_mask(2, 16, 0.4)
    full = stock(x, mask)
    encoding = ours.encode(x, mask, main=main)
    predicted = full[:, 1:][mask].view(2, -1, 32)
    torch.testing.assert_close(encoding.predicted, predicted)
    if main:
        torch.testing.assert_close(encoding.main, full)
    else:
        assert encoding.main is None
    (predicted ** 2).mean().backward()
    (encoding.predicted ** 2).mean().backward()
    assert_same_grads(ours, stock)
    assert not torch.allclose(ours.encode(x, ~mask, main=main).predicted[:, :2],
                              encoding.predicted[:, :2])


def test_vit_layer_rows_equals_those_rows_of_the_full_layer():
    from mim_plugins.models.vit_rows import vit_layer_rows
    stock, _ = maskfeat_pair()
    layer = stock.layers[0]
    x = torch.randn(3, 17, 32)
    rows = torch.tensor([[0, 3, 9], [1, 2, 16], [5, 6, 7]])
    full = layer(x)
    torch.testing.assert_close(vit_layer_rows(layer, x, rows),
                               full.gather(1, rows[..., None].expand(-1, -1, 32)))
    other = x.clone()
    other[:, 4] += torch.randn(32)  # a row no query reads still gives keys and values
    assert not torch.allclose(vit_layer_rows(layer, other, rows), vit_layer_rows(layer, x, rows))
