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
    theirs = dict(stock.named_parameters())
    for name, param in ours.named_parameters():
        if theirs[name].grad is None:
            assert param.grad is None, name
            continue
        torch.testing.assert_close(param.grad, theirs[name].grad, atol=1e-6, rtol=1e-4,
                                   msg=name)
    # another mask, other rows
    assert not torch.allclose(ours.encode(x, ~mask).predicted, encoding.predicted)
