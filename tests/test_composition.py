"""Mask generator x algorithm (x bottleneck x supervised branch) compose by config.

For every pair the contract allows: a training step runs, the masks the preprocessor wrote are
exactly the ones the loss reads (the head receives them), and another draw changes both the
predicted positions and the loss. Every pair it does not allow is refused when the model is
built, with one line naming the field and the fix.
"""
import copy
from typing import Dict, List, Tuple

import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

import mim_plugins  # noqa: F401
from mim_plugins.models.sample_masks import check_mask_fields

IMG, PATCH, DIM, CLASSES = 16, 4, 32, 3
GRID = IMG // PATCH
ARCH = dict(embed_dims=DIM, num_layers=2, num_heads=2, feedforward_channels=64)
PRE = dict(type='SelfSupDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3, to_rgb=False)
TWO_PRE = dict(type='TwoNormDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3,
               second_mean=[127.5] * 3, second_std=[64.0] * 3, to_rgb=False)

GENERATORS = {
    'random': dict(mask_generator=dict(type='RandomMaskGenerator', mask_ratio=0.75, grid=GRID)),
    'block': dict(mask_generator=dict(type='BlockMaskGenerator', mask_ratio=0.5, grid=GRID,
                                      min_block=2)),
    'semantic': dict(mask_generator=dict(type='SemanticPartMaskGenerator', mask_ratio=0.75,
                                          lam_schedule='constant', lam_value=0.5)),
    'separate': dict(mask_generator=dict(type='RandomMaskGenerator', mask_ratio=0.5, grid=GRID),
                     input_mask_generator=dict(type='RandomMaskGenerator', mask_ratio=0.75,
                                               grid=GRID)),
}

MAE_NECK = dict(type='MAEPretrainDecoder', num_patches=GRID**2, patch_size=PATCH, embed_dim=DIM,
                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
MAE_HEAD = dict(type='MAEPretrainHead', norm_pix=True, patch_size=PATCH,
                loss=dict(type='PixelReconstructionLoss', criterion='L2'))
VIT = dict(arch=ARCH, img_size=IMG, patch_size=PATCH)
ALGORITHMS = {
    'MAE': dict(type='SemMAE', backbone=dict(type='SemMAEViT', mask_ratio=0.75, **VIT),
                neck=MAE_NECK, head=MAE_HEAD),
    'MAE+bottleneck': dict(
        type='BottleneckMAE',
        backbone=dict(type='BottleneckMAEViT', mask_ratio=0.75, num_cls_tokens=2, **VIT),
        neck=dict(MAE_NECK, type='BottleneckMAEDecoder'), head=MAE_HEAD),
    'MaskFeat': dict(type='MaskedMaskFeat', backbone=dict(type='MaskFeatViT', **VIT),
                     neck=dict(type='LinearNeck', in_channels=DIM, out_channels=108,
                               norm_cfg=None),
                     head=dict(type='MIMHead', loss=dict(type='PixelReconstructionLoss',
                                                         criterion='L2')),
                     target_generator=dict(type='HOGGenerator')),
    'BEiT': dict(type='MaskedBEiT', backbone=dict(type='BEiTPretrainViT', **VIT),
                 head=dict(type='BEiTV1Head', embed_dims=DIM, num_embed=16,
                           loss=dict(type='CrossEntropyLoss')),
                 target_generator=dict(type='HOGGenerator')),  # stubbed, see `build`
}
ALGORITHMS['MaskFeat+bottleneck'] = dict(
    ALGORITHMS['MaskFeat'], type='BottleneckMaskFeat',
    backbone=dict(type='BottleneckMaskFeatViT', num_cls_tokens=2, **VIT))
ALGORITHMS['BEiT+bottleneck'] = dict(
    ALGORITHMS['BEiT'], type='BottleneckBEiT', backbone=dict(type='BottleneckBEiTViT', **VIT))

# separate masks need an encoder that hides other patches than it predicts
REFUSED = {('separate', 'MaskFeat'), ('separate', 'BEiT')}
PAIRS = [(g, a, branch) for g in GENERATORS for a in ALGORITHMS for branch in (False, True)
         if (g, a) not in REFUSED]


class TargetStub(nn.Module):
    """A tiny stand-in for the targets (HOG needs a 14x14 grid, DALL-E weights): a fixed random
    patch projection, DALL-E-like logits ``(B, 16, h, w)`` or HOG-like ``(B, L, 108)``."""

    def __init__(self, channels: int, per_patch: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, PATCH, PATCH)
        self.per_patch = per_patch

    def forward(self, x):
        out = self.conv(x)
        return out.flatten(2).transpose(1, 2) if self.per_patch else out


def build(generator: str, algorithm: str, branch: bool) -> nn.Module:
    cfg = copy.deepcopy(ALGORITHMS[algorithm])
    cfg['data_preprocessor'] = dict(type='MaskingDataPreprocessor',
                                    preprocessor=TWO_PRE if 'BEiT' in algorithm else PRE,
                                    **copy.deepcopy(GENERATORS[generator]))
    if branch:
        cfg.update(cls_head=dict(type='VisibleTokenClsHead', num_classes=CLASSES,
                                 in_channels=DIM, hidden_channels=8),
                   cls_loss_ratio=0.5)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    if 'BEiT' in algorithm or 'MaskFeat' in algorithm:
        model.target_generator = TargetStub(16, False) if 'BEiT' in algorithm else TargetStub(
            108, True)
    return model


def batch(algorithm: str) -> Dict:
    """4 images (3, IMG, IMG) uint8 with labels and a 4x4 part map of 3 parts."""
    gen = torch.Generator().manual_seed(1)
    items = []
    for i in range(4):
        img = torch.randint(0, 256, (3, IMG, IMG), generator=gen, dtype=torch.uint8)
        sample = DataSample().set_gt_label(i % CLASSES)
        sample.set_field(torch.randint(0, 3, (GRID, GRID), generator=gen), 'part_ids')
        items.append(dict(inputs=[img, img.clone()] if 'BEiT' in algorithm else img,
                          data_samples=sample))
    return default_collate(items)


def full_targets(model: nn.Module, algorithm: str, inputs) -> torch.Tensor:
    """The algorithm's target at every patch, computed here: ``(B, L, D)`` pixels or HOG, or
    ``(B, L)`` tokenizer ids (BEiT)."""
    with torch.no_grad():
        if 'BEiT' in algorithm:
            return model.target_generator(inputs[1]).argmax(1).flatten(1)
        if 'MaskFeat' in algorithm:
            return model.target_generator(inputs)
        return model.head.construct_target(inputs)


def masked_loss(model: nn.Module, algorithm: str, seed: int
                ) -> Tuple[Dict[str, torch.Tensor], List[DataSample], torch.Tensor]:
    """Preprocess a batch with the mask draw of ``seed``; the losses, the samples, and the
    target rows the head's loss received minus the targets at the written mask (zero when the
    loss reads exactly the written mask's patches)."""
    torch.manual_seed(seed)
    data = model.data_preprocessor(batch(algorithm), True)
    seen = []
    original = model.head.loss_module.forward

    def spy(*args, **kwargs):
        seen.append(args[1])  # (pred, target, ...): the target rows the loss compares with
        return original(*args, **kwargs)

    model.head.loss_module.forward = spy
    try:
        with torch.no_grad():
            losses = model.loss(data['inputs'], data['data_samples'])
    finally:
        del model.head.loss_module.forward
    written = torch.stack([s.mask.flatten() for s in data['data_samples']])
    expected = full_targets(model, algorithm, data['inputs'])[written]
    assert seen[0].numel() == expected.numel()
    return losses, data['data_samples'], seen[0].reshape(expected.shape) - expected


@pytest.mark.parametrize('generator,algorithm,branch', PAIRS,
                         ids=lambda v: str(v) if not isinstance(v, bool) else
                         ('branch' if v else 'plain'))
def test_allowed_pair_trains_and_follows_its_mask(generator, algorithm, branch):
    model = build(generator, algorithm, branch)
    losses, samples, off_mask = masked_loss(model, algorithm, seed=3)
    written = torch.stack([s.mask.flatten() for s in samples])
    assert torch.all(off_mask == 0)  # the loss reads the targets at the written mask
    if generator == 'separate':
        hidden = torch.stack([s.input_mask.flatten() for s in samples])
        assert not torch.equal(hidden, written)
    again, samples2, off_mask2 = masked_loss(model, algorithm, seed=4)
    assert torch.all(off_mask2 == 0)
    written2 = torch.stack([s.mask.flatten() for s in samples2])
    assert not torch.equal(written2, written)  # another draw, other predicted positions
    key = 'loss_rec' if branch else 'loss'
    assert not torch.equal(again[key], losses[key])
    if branch:
        assert {'loss_rec', 'loss_cls', 'accuracy_top-1'} <= set(losses)
    # a real training step: every loss term is finite and the parameters move
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    torch.manual_seed(5)
    logged = model.train_step(batch(algorithm), optim)
    assert all(torch.isfinite(v) for v in logged.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    moved = {name for (name, p), a in zip(model.named_parameters(), before)
             if not torch.equal(a, p)}
    assert any(name.startswith('backbone.layers.') for name in moved)
    assert branch == any(name.startswith('cls_head.') for name in moved)


@pytest.mark.parametrize('generator,algorithm', sorted(REFUSED))
def test_disallowed_pair_is_refused(generator, algorithm):
    with pytest.raises(ValueError, match=r'writes data_sample\.input_mask, but Masked\w+ '
                                         r'\(backbone \w+\) never reads it.*Fix: '):
        build(generator, algorithm, False)


def test_stock_mae_with_a_mask_generator_is_refused():
    """mmpretrain's MAE draws its own random mask: a generator in its config would be ignored."""
    cfg = dict(ALGORITHMS['MAE'], type='MAE', backbone=dict(type='MAEViT', **VIT),
               data_preprocessor=dict(type='MaskingDataPreprocessor', preprocessor=PRE,
                                      **GENERATORS['semantic']))
    model = MODELS.build(cfg)
    with pytest.raises(ValueError, match=r"writes data_sample\.mask, but MAE .*type='SemMAE'"):
        check_mask_fields(model)
    check_mask_fields(MODELS.build(dict(cfg, data_preprocessor=PRE)))  # no masks: fine


def test_the_branch_reads_only_the_main_stream():
    """On the bottleneck MaskFeat the branch pools the main stream: changing a hidden patch's
    pixels leaves loss_cls unchanged, changing a visible one changes it, and it equals the head
    applied to the main stream computed directly."""
    model = build('random', 'MaskFeat+bottleneck', True).eval()
    data = model.data_preprocessor(batch('MaskFeat'), True)
    x, samples = data['inputs'], data['data_samples']
    mask = torch.stack([s.mask for s in samples])  # (B, GRID, GRID)
    pixels = mask.repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)[:, None]
    with torch.no_grad():
        base = model.loss(x, samples)['loss_cls']
        hidden_changed = model.loss(torch.where(pixels, x + 1.0, x), samples)['loss_cls']
        visible_changed = model.loss(torch.where(~pixels, x + 1.0, x), samples)['loss_cls']
    assert torch.allclose(base, hidden_changed, atol=1e-6)
    assert not torch.allclose(base, visible_changed, atol=1e-4)
    # independently: the head on the main stream [2 cls tokens, visible patches], not on the
    # bottleneck rows (the twin stack's outputs at the predicted patches)
    with torch.no_grad():
        encoding = model.backbone.encode(x, mask.flatten(1))
        main = encoding.main
        on_main = model.cls_head.loss(main, samples, num_cls_tokens=2)['loss'] * 0.5
        # the predicted rows in place of the visible ones: another loss
        rows = torch.cat([main[:, :2], encoding.predicted], 1)
        on_predicted = model.cls_head.loss(rows, samples, num_cls_tokens=2)['loss'] * 0.5
    assert torch.allclose(base, on_main) and not torch.allclose(base, on_predicted)


def test_the_train_driver_refuses_a_stock_mae_with_a_mask_generator(tiny_data, tmp_path):
    """tools/train.py's runner checks every model, mmpretrain's stock ones included, before its
    first step (the config's MaskCheckHook; tests/test_entry_points.py: mim train's too)."""
    import os.path as osp

    from conftest import ROOT
    from test_configs import shrink

    from mim_plugins.apis.common import load_config
    from mim_plugins.apis.train import build_runner, parse_args
    config = osp.join(ROOT, 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
    args = parse_args([config, '--work-dir', str(tmp_path)])
    cfg = load_config(args)
    assert cfg.model.type == 'MAE'
    shrink(cfg, tiny_data, str(tmp_path))
    pre = cfg.model.pop('data_preprocessor', None) or cfg.data_preprocessor
    cfg.data_preprocessor = dict(type='MaskingDataPreprocessor', preprocessor=pre,
                                 mask_generator=dict(type='RandomMaskGenerator', grid=7))
    runner = build_runner(args, cfg)
    with pytest.raises(ValueError, match=r'writes data_sample\.mask, but MAE'):
        runner.train()
    assert runner.iter == 0
    cfg.model.type, cfg.model.backbone.type = 'SemMAE', 'SemMAEViT'  # the fix it names
    assert build_runner(args, cfg).model.data_preprocessor.written_fields() == ('mask', )
