"""DALLETokenizer gives the stock DALL-E encoder's token ids at the patches asked for, and
MaskedBEiT's loss is the same with it as with the stock tokenizer."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mim_plugins  # noqa: F401
from mim_plugins.masking import random_mask
from mim_plugins.models.dalle_tokenizer import (DALLETokenizer, StockPatchTokenizer,
                                                patch_tokenizer)

TINY = dict(n_hid=8, vocab_size=64)  # 8x downsampling: 48x48 images -> a 6x6 token grid


def tokenizers():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    stock = MODELS.build(dict(type='DALL-E', **TINY)).eval()
    ours = MODELS.build(dict(type='DALLETokenizer', **TINY)).eval()
    ours.load_state_dict(stock.state_dict())  # the same parameters, both ways
    stock.load_state_dict(ours.state_dict())
    return stock, ours


def test_tokens_are_the_stock_argmax_at_the_patches_asked_for():
    stock, ours = tokenizers()
    for seed in range(3):
        torch.manual_seed(seed)
        images = torch.randn(4, 3, 48, 48)
        ids = torch.stack([torch.randperm(36)[:14].sort().values for _ in range(4)])
        with torch.no_grad():
            expected = stock(images).argmax(1).flatten(1).gather(1, ids)
            tokens = ours.tokens(images, ids)
            assert tokens.dtype == torch.int64 and tokens.shape == (4, 14)
            assert torch.equal(tokens, expected)
            # the adapter answers the same for the stock module
            assert torch.equal(StockPatchTokenizer(stock).tokens(images, ids), expected)
            # other images, other tokens; other patches, other tokens
            assert not torch.equal(ours.tokens(images.flip(-1), ids), tokens)
            assert not torch.equal(ours.tokens(images, (ids + 1) % 36), tokens)


def test_patch_tokenizer_picks_the_contract_or_the_adapter():
    stock, ours = tokenizers()
    assert patch_tokenizer(ours) is ours
    assert isinstance(patch_tokenizer(stock), StockPatchTokenizer)
    assert isinstance(ours, DALLETokenizer)


def test_tokens_refuse_images_of_the_wrong_shape():
    _, ours = tokenizers()
    with pytest.raises(ValueError, match=r'images \(B, 3, H, W\), got \(4, 1, 48, 48\)'):
        ours.tokens(torch.randn(4, 1, 48, 48), torch.zeros(4, 2, dtype=torch.long))


@pytest.mark.parametrize('branch', [False, True])
def test_masked_beit_loss_is_the_same_with_either_tokenizer(branch):
    """The whole loss (and its gradients) with DALLETokenizer and the predicted-only encoder
    equals the loss with the stock DALL-E module; with the branch, main is computed too."""
    init_default_scope('mmpretrain')
    losses, grads = [], []
    for kind in ('DALL-E', 'DALLETokenizer'):
        torch.manual_seed(0)
        cfg = dict(
            type='MaskedBEiT',
            backbone=dict(type='MaskedBEiTViT', arch=dict(embed_dims=32, num_layers=2,
                                                          num_heads=4, feedforward_channels=64),
                          img_size=48, patch_size=8, layer_scale_init_value=0.1),
            neck=None,
            head=dict(type='BEiTV1Head', embed_dims=32, num_embed=64,
                      loss=dict(type='CrossEntropyLoss')),
            target_generator=dict(type=kind, **TINY))
        if branch:
            cfg.update(cls_head=dict(type='VisibleTokenClsHead', num_classes=3, in_channels=32),
                       cls_loss_ratio=0.5)
        model = MODELS.build(cfg)
        model.init_weights()
        torch.manual_seed(1)
        images = [torch.randn(2, 3, 48, 48), torch.randn(2, 3, 48, 48)]
        samples = [DataSample(mask=m.view(6, 6)).set_gt_label(i)
                   for i, m in enumerate(random_mask(2, 36, 0.4))]
        loss = model.loss(images, samples)
        total = sum(v for k, v in loss.items() if k.startswith('loss'))
        total.backward()
        losses.append({k: v.detach() for k, v in loss.items()})
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
    assert losses[0].keys() == losses[1].keys()
    assert ('loss_cls' in losses[0]) == branch
    for key in losses[0]:
        torch.testing.assert_close(losses[1][key], losses[0][key])
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-4,
                                   msg=name)
