"""SemanticMIM's bottleneck: what the mask tokens may see, the visible path, shapes, losses."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mim_plugins  # noqa: F401
from mim_plugins.masking import mask_to_indices, random_mask
from mim_plugins.models.bottleneck import subset_rel_pos_bias

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
IMG, PATCH, GRID = 32, 8, 4  # 16 patches
BACKBONES = ('BottleneckMaskFeatViT', 'BottleneckBEiTViT')
ABSOLUTE = dict(use_abs_pos_emb=True, use_rel_pos_bias=False, use_shared_rel_pos_bias=False)


def build(cfg: dict) -> torch.nn.Module:
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()  # mmpretrain backbones' train() returns None, so no chaining
    return model


def backbone(kind: str, **kwargs) -> torch.nn.Module:
    return build(dict(type=kind, arch=ARCH, img_size=IMG, patch_size=PATCH, **kwargs))


def first_twin_output(model, x, mask) -> torch.Tensor:
    """Mask-token rows leaving the first bottleneck layer."""
    seen = {}
    handle = model.bottleneck_layers[0].register_forward_hook(
        lambda mod, inp, out: seen.setdefault('out', out))
    with torch.no_grad():
        model.forward_streams(x, mask)
    handle.remove()
    return seen['out'][:, model.num_cls_tokens:]


def patches_of(mask_row: torch.Tensor) -> torch.Tensor:
    """Pixel mask ``(1, 1, IMG, IMG)`` of the patches where the ``(16,)`` bool row is True."""
    return mask_row.view(1, 1, GRID, GRID).float().repeat_interleave(PATCH, 2) \
        .repeat_interleave(PATCH, 3)


def traced(model, x, mask):
    """``(outputs of each main layer, outputs of each bottleneck layer)`` of one forward."""
    main, twin = [], []
    hooks = [layer.register_forward_hook(lambda mod, inp, out: main.append(out))
             for layer in model.layers]
    hooks += [layer.register_forward_hook(lambda mod, inp, out: twin.append(out))
              for layer in model.bottleneck_layers]
    with torch.no_grad():
        model.forward_streams(x, mask)
    for hook in hooks:
        hook.remove()
    return main, twin


@pytest.mark.parametrize('kind', BACKBONES)
def test_mask_tokens_see_the_image_only_through_the_cls_tokens(kind):
    model = backbone(kind, num_cls_tokens=2)
    torch.manual_seed(1)
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 16, 0.75)
    other = x + torch.randn_like(x) * torch.cat([patches_of(~m[None]) for m in mask])
    masked_only = x + torch.randn_like(x) * torch.cat([patches_of(m[None]) for m in mask])
    assert not torch.equal(other, x) and not torch.equal(masked_only, x)
    # the pixels of the predicted (hidden) patches reach nothing
    torch.testing.assert_close(first_twin_output(model, x, mask),
                               first_twin_output(model, masked_only, mask), atol=0, rtol=0)
    # the first bottleneck layer already reads the image: the cls tokens it gets LEAVE main
    # layer 0, which attended to the visible patches (the official order)
    assert not torch.allclose(first_twin_output(model, x, mask),
                              first_twin_output(model, other, mask), atol=1e-4)


@pytest.mark.parametrize('kind', BACKBONES)
def test_each_bottleneck_layer_reads_the_cls_tokens_leaving_its_main_layer(kind):
    """Independent computation: bottleneck layer i on [cls rows of main layer i's output, mask
    tokens leaving bottleneck layer i-1], with the official order of the two steps. (BEiT with
    SemanticMIM's absolute positions: the layers then take no bias.)"""
    position = ABSOLUTE if kind == 'BottleneckBEiTViT' else {}
    model = backbone(kind, num_cls_tokens=3, **position)
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 16, 0.75)
    main, twin = traced(model, x, mask)
    n = model.num_cls_tokens
    with torch.no_grad():
        _, _, tokens = model.embed(x)
        _, ids = mask_to_indices(mask)
        pred = tokens.gather(1, ids.unsqueeze(-1).expand(-1, -1, 32))
        for i, layer in enumerate(model.bottleneck_layers):
            seq = torch.cat([main[i][:, :n], pred], 1)
            out = layer(seq, rel_pos_bias=None) if kind == 'BottleneckBEiTViT' else layer(seq)
            torch.testing.assert_close(out[:, n:], twin[i][:, n:])
            pred = out[:, n:]


@pytest.mark.parametrize('kind', BACKBONES)
def test_bottleneck_loss_trains_every_main_layer_and_the_final_norm(kind):
    """The loss reads only the mask tokens; still every main-stream parameter (the last layer,
    through the cls tokens it hands to the last bottleneck layer) and the backbone's own final
    norm ``ln1`` must get a non-zero gradient."""
    model = backbone(kind, num_cls_tokens=2)
    model.train()
    x = torch.randn(2, 3, IMG, IMG)
    _, pred = model.forward_streams(x, random_mask(2, 16, 0.75))
    pred.pow(2).mean().backward()
    dead = [name for name, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert dead == []
    assert not hasattr(model, 'bottleneck_norm')
    last = len(model.layers) - 1
    assert model.layers[last].ffn.layers[1].weight.grad.abs().sum() > 0
    assert model.ln1.weight.grad.abs().sum() > 0


def test_visible_path_is_the_plain_vit_on_the_visible_tokens():
    """The main stream equals mmpretrain's own MAE-style encoder (SemMAEViT = MAEViT on a given
    mask) with the same weights: a ViT run on the cls token and the visible patches only."""
    model = backbone('BottleneckMaskFeatViT')
    plain = build(dict(type='SemMAEViT', arch=ARCH, img_size=IMG, patch_size=PATCH))
    missing, _ = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == []
    x = torch.randn(3, 3, IMG, IMG)
    mask = random_mask(3, 16, 0.6)
    with torch.no_grad():
        main, _ = model.forward_streams(x, mask)
        latent, _, _ = plain(x, mask)
    torch.testing.assert_close(main, latent)


@pytest.mark.parametrize('position', [dict(), ABSOLUTE], ids=['shared-relative', 'absolute'])
def test_beit_visible_path_with_nothing_hidden_is_the_stock_beit(position):
    """With separate masks and no hidden patch, the main stream is the stock BEiTPretrainViT
    on the whole image, with BEiT's shared relative bias (gathered right) or SemanticMIM's
    absolute position embedding."""
    model = backbone('BottleneckBEiTViT', **position)
    assert (model.pos_embed is not None) == bool(position)
    assert (model.rel_pos_bias is None) == bool(position)
    stock = build(dict(type='BEiTPretrainViT', arch=ARCH, img_size=IMG, patch_size=PATCH,
                       **position))
    missing, _ = stock.load_state_dict(model.state_dict(), strict=False)
    assert missing == []
    x = torch.randn(2, 3, IMG, IMG)
    nothing = torch.zeros(2, 16, dtype=torch.bool)
    with torch.no_grad():
        main, _ = model.forward_streams(x, random_mask(2, 16, 0.5), input_mask=nothing)
        (full, ) = stock(x, mask=nothing.view(2, GRID, GRID))
    torch.testing.assert_close(main, full)


def test_subset_rel_pos_bias_picks_rows_and_columns():
    bias = torch.arange(2 * 5 * 5.).view(2, 5, 5)
    ids = torch.tensor([[0, 2, 4], [0, 0, 1]])
    out = subset_rel_pos_bias(bias, ids)
    assert out.shape == (2, 2, 3, 3)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                assert torch.equal(out[b, :, i, j], bias[:, ids[b, i], ids[b, j]])


@pytest.mark.parametrize('kind', BACKBONES)
def test_cls_tokens_and_separate_masks_shapes(kind):
    model = backbone(kind, num_cls_tokens=3)
    assert model.extra_cls_tokens.shape == (1, 2, 32)
    x = torch.randn(2, 3, IMG, IMG)
    predicted = random_mask(2, 16, 0.75)  # 12 predicted
    hidden = random_mask(2, 16, 0.5)  # 8 hidden, 8 visible, drawn independently
    main, pred = model.forward_streams(x, predicted, hidden)
    assert main.shape == (2, 3 + 8, 32) and pred.shape == (2, 12, 32)
    encoding = model.encode(x, predicted.view(2, GRID, GRID), hidden)
    assert encoding.num_cls == 3 and isinstance(encoding.num_cls, int)  # static: no sync
    assert torch.equal(encoding.main, main) and torch.equal(encoding.predicted, pred)
    assert torch.equal(encoding.predicted_ids, mask_to_indices(predicted)[1])
    assert encoding.hidden.dtype == torch.bool and torch.equal(encoding.hidden, hidden)
    assert encoding.main_mask is None  # every patch row of main is a visible patch
    with pytest.raises(ValueError, match='encode'):  # no stock layout of padded rows
        model(x, predicted)


def test_per_layer_relative_bias_is_refused():
    with pytest.raises(ValueError, match='shared relative position bias'):
        backbone('BottleneckBEiTViT', use_rel_pos_bias=True, use_shared_rel_pos_bias=False)


# ---- the frameworks: targets and losses on the predicted patches only --------------------------
class FixedTarget(torch.nn.Module):
    """A target generator that returns a given tensor (the real ones are DALL-E / HOG)."""

    def __init__(self, value: torch.Tensor):
        super().__init__()
        self.value = value

    def forward(self, x):
        return self.value


def samples(mask: torch.Tensor, input_mask=None):
    out = []
    for i, m in enumerate(mask):
        s = DataSample()
        s.set_mask(m.view(GRID, GRID))
        if input_mask is not None:
            s.set_field(input_mask[i].view(GRID, GRID), 'input_mask')
        out.append(s)
    return out


def framework(name: str) -> torch.nn.Module:
    if name == 'BottleneckBEiT':
        return build(dict(
            type='BottleneckBEiT',
            backbone=dict(type='BottleneckBEiTViT', arch=ARCH, img_size=IMG, patch_size=PATCH),
            head=dict(type='BEiTV1Head', embed_dims=32, num_embed=16,
                      loss=dict(type='CrossEntropyLoss')),
            target_generator=dict(type='HOGGenerator')))  # replaced by FixedTarget below
    return build(dict(
        type='BottleneckMaskFeat',
        backbone=dict(type='BottleneckMaskFeatViT', arch=ARCH, img_size=IMG, patch_size=PATCH,
                      num_cls_tokens=2),
        neck=dict(type='LinearNeck', in_channels=32, out_channels=108, norm_cfg=None),
        head=dict(type='MIMHead', loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        target_generator=dict(type='HOGGenerator')))


def fixed_target(name: str, mask: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """A target, changed only at the patches ``where`` (bool ``(B, 16)``)."""
    torch.manual_seed(3)
    if name == 'BottleneckBEiT':  # DALL-E logits (B, vocab, h, w)
        target = torch.randn(2, 16, GRID, GRID)
        target.permute(0, 2, 3, 1).reshape(2, 16, 16)[where] += 100 * torch.eye(16)[5]
        return target
    target = torch.randn(2, 16, 108)  # HOG (B, L, 108)
    target[where] += 1.0
    return target


@pytest.mark.parametrize('name', ['BottleneckBEiT', 'BottleneckMaskFeat'])
@pytest.mark.parametrize('separate', [False, True])
def test_loss_reads_the_target_at_predicted_patches_only(name, separate):
    model = framework(name)
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 16, 0.75)
    hidden = random_mask(2, 16, 0.5) if separate else None
    inputs = [x, x] if name == 'BottleneckBEiT' else x

    def loss(target):
        model.target_generator = FixedTarget(target)
        with torch.no_grad():
            return next(iter(model.loss(inputs, samples(mask, hidden)).values()))

    base = loss(fixed_target(name, mask, torch.zeros_like(mask)))
    assert torch.equal(base, loss(fixed_target(name, mask, ~mask)))  # unmasked targets changed
    assert not torch.allclose(base, loss(fixed_target(name, mask, mask)))  # masked ones changed


def test_separate_masks_reach_the_backbone():
    model = framework('BottleneckMaskFeat')
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 16, 0.75)
    seen = []
    run = model.backbone.encode
    model.backbone.encode = lambda *a, **k: (seen.append(run(*a, **k).predicted.clone())
                                             or run(*a, **k))
    hidden = random_mask(2, 16, 0.25)
    model.target_generator = FixedTarget(torch.randn(2, 16, 108))
    with torch.no_grad():
        model.loss(x, samples(mask, hidden))
        model.loss(x, samples(mask))
        # the backbone, called with the masks as arguments, gives what the loss computed
        expected = [run(x, mask, hidden).predicted, run(x, mask).predicted]
    assert len(seen) == 2  # two losses
    assert torch.equal(seen[0], expected[0]) and torch.equal(seen[1], expected[1])
    assert not torch.equal(seen[0], seen[1])  # the input_mask changed what the encoder saw


# ---- MAE with the bottleneck in the decoder -----------------------------------------------------
def test_mae_decoder_mask_tokens_attend_only_to_cls_and_mask_tokens():
    decoder = build(dict(type='BottleneckMAEDecoder', num_patches=16, patch_size=PATCH,
                         embed_dim=32, decoder_embed_dim=16, decoder_depth=2,
                         decoder_num_heads=2))
    cls = torch.randn(2, 3, 32)
    mask = random_mask(2, 16, 0.75)
    with torch.no_grad():
        out = decoder(cls, mask_to_indices(mask)[1])
        # independent computation: the stock blocks on [cls tokens, predicted mask tokens]
        _, ids = mask_to_indices(mask)
        pos = decoder.decoder_pos_embed
        tokens = torch.cat([decoder.decoder_embed(cls) + pos[:, :1],
                            decoder.mask_token + pos[0, 1:][ids]], 1)
        for block in decoder.decoder_blocks:
            tokens = block(tokens)
        expected = decoder.decoder_pred(decoder.decoder_norm(tokens))[:, 3:]
    assert out.shape == (2, 12, PATCH * PATCH * 3)  # the predicted patches only
    torch.testing.assert_close(out, expected)


def test_bottleneck_mae_loss_depends_on_the_image_only_through_cls():
    model = build(dict(
        type='BottleneckMAE',
        backbone=dict(type='BottleneckMAEViT', arch=ARCH, img_size=IMG, patch_size=PATCH,
                      num_cls_tokens=2),
        neck=dict(type='BottleneckMAEDecoder', num_patches=16, patch_size=PATCH, embed_dim=32,
                  decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2'))))
    x = torch.randn(2, 3, IMG, IMG)
    mask = random_mask(2, 16, 0.75)
    latent, hidden, _ = model.backbone(x, mask)
    assert latent.shape == (2, 2 + 4, 32) and torch.equal(hidden.bool(), mask)
    captured = {}
    model.neck.register_forward_pre_hook(lambda mod, args: captured.update(cls=args[0]))
    loss = model.loss(x, samples(mask))['loss']
    assert captured['cls'].shape == (2, 2, 32)  # only the cls latents reach the decoder
    loss.backward()
    assert model.backbone.extra_cls_tokens.grad.abs().sum() > 0
