"""SemMAE in training: part maps from disk -> masks in the main process -> MAE on given masks."""
import glob
import itertools
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope

import mim_plugins.datasets.part_maps  # noqa: F401  (registers the transforms)
import mim_plugins.engine.hooks  # noqa: F401  (registers SemMAELambdaHook)
import mim_plugins.models.mask_generators  # noqa: F401  (registers generators, preprocessor)
import mim_plugins.models.semmae  # noqa: F401  (registers SemMAE, SemMAEViT)
from conftest import ROOT, make_part_maps, run_env
from mim_plugins.apis.errors import UserInputError
from mim_plugins.datasets.part_maps import part_map_path, save_part_map
from mim_plugins.masking import lambda_schedule, num_masked, part_mask_counts

init_default_scope('mmpretrain')
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS  # noqa: E402

GRID = 4  # 28x28 tiny images, 7x7 patches: 16 tokens, 12 masked at ratio 0.75
RATIO = 0.75
# Part 0 = left half (8 patches), part 1 = top-right quarter (4), part 2 = bottom-right (4).
THREE_PARTS = np.array([[0, 0, 1, 1]] * 2 + [[0, 0, 2, 2]] * 2)
# Two halves of 8 patches: the sorted per-part counts name λ's regime (see the Runner test).
TWO_HALVES = np.array([[0, 0, 1, 1]] * 4)


def write_maps(tiny_data: str, part_root: str, part_map: np.ndarray) -> str:
    """The same ``part_map`` for every tiny train image."""
    for path in glob.glob(osp.join(tiny_data, 'train', '**', '*.png'), recursive=True):
        save_part_map(part_map_path(part_root, osp.join(tiny_data, 'train'), path), part_map)
    return part_root


def tiny_semmae(generator: dict) -> dict:
    """SemMAE with a 1-layer 32-d ViT on 28² images with 7² patches (4x4 grid)."""
    return dict(
        type='SemMAE',
        data_preprocessor=dict(
            type='MaskingDataPreprocessor',
            preprocessor=dict(type='SelfSupDataPreprocessor', mean=[127.5] * 3, std=[127.5] * 3,
                              to_rgb=True),
            mask_generator=generator),
        backbone=dict(type='SemMAEViT', arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                                                  feedforward_channels=64),
                      img_size=28, patch_size=7, mask_ratio=RATIO),
        neck=dict(type='MAEPretrainDecoder', num_patches=GRID * GRID, patch_size=7, in_chans=3,
                  embed_dim=32, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=7,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def tiny_dataset(tiny_data: str, part_root: str, num_parts: int) -> dict:
    return dict(
        type='CustomDataset', data_root=tiny_data, data_prefix='train', with_label=False,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadPartMap', part_root=part_root, img_prefix=osp.join(tiny_data, 'train'),
                 grid=GRID, num_parts=num_parts),
            dict(type='PackInputs', algorithm_keys=['part_ids']),
        ])


def per_part_counts(mask: torch.Tensor, part_ids: torch.Tensor, num_parts: int) -> tuple:
    """Masked patches of each part in one image: ``mask``, ``part_ids`` ``(H, W)``."""
    return tuple(int(mask[part_ids == p].sum()) for p in range(num_parts))


def run_real_path(tiny_data, part_root, generator, num_parts):
    """Dataset (LoadPartMap) -> MaskingDataPreprocessor -> SemMAE.loss; returns the data samples
    and the float mask the encoder itself returned."""
    model = MODELS.build(tiny_semmae(generator))
    dataset = DATASETS.build(tiny_dataset(tiny_data, part_root, num_parts))
    used = []
    encode = model.backbone.encode  # the encoder's own answer to the masks it was given
    model.backbone.encode = lambda *a: used.append(encode(*a)) or used[-1]
    data = model.data_preprocessor(default_collate([dataset[i] for i in range(len(dataset))]),
                                   True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss'])
    return data['data_samples'], used[0].hidden.float()


def test_exact_counts_at_lambda_1_and_0_through_the_training_path(tiny_data, tmp_path):
    part_root = write_maps(tiny_data, str(tmp_path / 'parts'), THREE_PARTS)
    sizes = torch.tensor([8, 4, 4])
    total = num_masked(GRID * GRID, RATIO)
    inter = {tuple(part_mask_counts(sizes, RATIO, 0.0, torch.tensor(order)).tolist())
             for order in itertools.permutations(range(3))}
    assert inter == {(8, 4, 0), (8, 0, 4), (4, 4, 4)}
    for lam, allowed in ((1.0, {(6, 3, 3)}), (0.0, inter)):
        generator = dict(type='SemanticPartMaskGenerator', mask_ratio=RATIO,
                         lam_schedule='constant', lam_value=lam)
        samples, used = run_real_path(tiny_data, part_root, generator, 3)
        masks = torch.stack([s.mask for s in samples])
        assert masks.dtype == torch.bool and masks.shape == (20, GRID, GRID)
        # the encoder masked exactly what the data samples say
        assert torch.equal(used, masks.flatten(1).float())
        for sample in samples:
            assert torch.equal(torch.as_tensor(sample.part_ids), torch.as_tensor(THREE_PARTS))
            assert per_part_counts(sample.mask, torch.as_tensor(THREE_PARTS), 3) in allowed
            assert int(sample.mask.sum()) == total


def test_counts_in_between_follow_the_mixed_rounding(tiny_data, tmp_path):
    part_root = write_maps(tiny_data, str(tmp_path / 'parts'), THREE_PARTS)
    sizes, total = torch.tensor([8, 4, 4]), num_masked(GRID * GRID, RATIO)
    expected = [part_mask_counts(sizes, RATIO, 0.5, torch.tensor(order)).tolist()
                for order in itertools.permutations(range(3))]
    generator = dict(type='SemanticPartMaskGenerator', mask_ratio=RATIO,
                     lam_schedule='constant', lam_value=0.5)
    samples, _ = run_real_path(tiny_data, part_root, generator, 3)
    for sample in samples:
        got = per_part_counts(sample.mask, torch.as_tensor(THREE_PARTS), 3)
        assert sum(got) == total
        # c_p = round(0.5 c1 + 0.5 c2) for some part order, then the fixed total: a surplus only
        # unmasks selected patches, a deficit only masks unselected ones
        assert any((sum(c) >= total and all(g <= e for g, e in zip(got, c))) or
                   (sum(c) <= total and all(g >= e for g, e in zip(got, c))) for c in expected)


def test_random_generator_uses_the_part_grid_and_exact_count(tiny_data, tmp_path):
    part_root = write_maps(tiny_data, str(tmp_path / 'parts'), THREE_PARTS)
    samples, used = run_real_path(tiny_data, part_root,
                                  dict(type='RandomMaskGenerator', mask_ratio=RATIO, grid=99), 3)
    masks = torch.stack([s.mask for s in samples])
    assert masks.shape == (20, GRID, GRID)
    assert (masks.flatten(1).sum(1) == num_masked(GRID * GRID, RATIO)).all()
    assert torch.equal(used, masks.flatten(1).float())


def test_lambda_follows_the_epoch_with_persistent_workers(tiny_data, tmp_path):
    """3 epochs, 2 persistent workers: the masks the encoder received in epoch e have the
    per-part counts of λ(e) = 1 - ((e + 1) / 3)², and λ is logged per epoch."""
    from mmengine.runner import Runner
    part_root = write_maps(tiny_data, str(tmp_path / 'parts'), TWO_HALVES)
    epochs = 3
    runner = Runner(
        model=tiny_semmae(dict(type='SemanticPartMaskGenerator', mask_ratio=RATIO,
                               lam_schedule='square')),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=10, num_workers=2, persistent_workers=True, drop_last=True,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=tiny_dataset(tiny_data, part_root, 2)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        custom_hooks=[dict(type='SemMAELambdaHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=dict(type='CheckpointHook', interval=epochs)),
        default_scope='mmpretrain',
        randomness=dict(seed=0))
    received = {e: [] for e in range(epochs)}
    encode = runner.model.backbone.encode
    runner.model.backbone.encode = lambda *a: (
        lambda e: received[runner.epoch].append(e.hidden.detach()) or e)(encode(*a))
    runner.train()
    assert runner.train_dataloader.persistent_workers and runner.train_dataloader.num_workers == 2

    halves = torch.as_tensor(TWO_HALVES).flatten()
    regimes = []
    for epoch in range(epochs):
        lam = lambda_schedule(epoch, epochs, 'square')
        # both part orders give the same sorted counts for two equal halves
        want = tuple(sorted(part_mask_counts(torch.tensor([8, 8]), RATIO, lam,
                                             torch.tensor([0, 1])).tolist()))
        regimes.append(want)
        masks = torch.cat(received[epoch])
        assert masks.shape == (20, GRID * GRID)
        for mask in masks:
            got = tuple(sorted(int(mask[halves == p].sum()) for p in range(2)))
            assert got == want, f'epoch {epoch}: counts {got}, λ={lam:.3f} gives {want}'
    assert regimes == [(6, 6), (5, 7), (4, 8)]  # the three epochs are distinguishable

    logged = runner.message_hub.get_scalar('train/mask_lambda').data[0]
    np.testing.assert_allclose(logged, [lambda_schedule(e, epochs) for e in range(epochs)])
    log = open(glob.glob(str(tmp_path / 'work' / '*' / '*.log'))[0]).read()
    assert 'mask_lambda: 0.8889' in log and 'mask_lambda: 0.0000' in log


def test_given_mask_keeps_exactly_the_visible_tokens():
    vit = MODELS.build(tiny_semmae(dict(type='RandomMaskGenerator'))['backbone'])
    vit.init_weights()
    vit.eval()
    torch.manual_seed(0)
    x = torch.randn(3, 3, 28, 28)
    mask = torch.zeros(3, GRID * GRID, dtype=torch.bool)
    for row, masked in zip(mask, ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], list(range(4, 16)),
                                  [0, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15])):
        row[masked] = True
    latent, mask_out, ids_restore = vit(x, mask)

    # by hand: embed, add positions, keep the visible tokens in patch order, cls first, layers
    tokens = vit.patch_embed(x)[0] + vit.pos_embed[:, 1:]
    visible = torch.stack([t[~m] for t, m in zip(tokens, mask)])
    h = torch.cat([(vit.cls_token + vit.pos_embed[:, :1]).expand(3, -1, -1), visible], 1)
    for layer in vit.layers:
        h = layer(h)
    torch.testing.assert_close(latent, vit.norm1(h))
    assert latent.shape == (3, 1 + 4, 32)
    assert torch.equal(mask_out, mask.float())
    # ids_restore puts [visible..., masked...] back into patch order, as MAE's decoder expects
    for m, restore in zip(mask, ids_restore):
        order = torch.cat([torch.nonzero(~m).flatten(), torch.nonzero(m).flatten()])
        assert torch.equal(order[restore], torch.arange(GRID * GRID))

    # pixels of masked patches cannot change the encoder output
    x2 = x.clone()
    x2[0, :, :7, :] = 100.0  # first patch row: masked in image 0
    torch.testing.assert_close(vit(x2, mask)[0][0], latent[0])
    # without a given mask: MAE's random masking, and the plain ViT for mask=None
    assert vit(x)[0].shape == latent.shape
    assert vit(x, None)[0].shape == (3, 1 + 16, 32)
    with pytest.raises(ValueError, match='bool'):
        vit(x, mask.float())
    with pytest.raises(ValueError, match='same number'):
        vit(x, torch.cat([mask[:1], ~mask[1:2], mask[2:]]))


def test_semmae_without_masks_in_samples_masks_at_random():
    model = MODELS.build(tiny_semmae(dict(type='RandomMaskGenerator')))
    from mmpretrain.structures import DataSample
    from mim_plugins.models.sample_masks import sample_masks
    assert sample_masks([DataSample(), DataSample()]) == (None, None)
    x = torch.randn(2, 3, 28, 28)
    torch.manual_seed(0)
    first = model.loss(x, [DataSample(), DataSample()])['loss']
    torch.manual_seed(1)
    assert first > 0 and not torch.equal(first, model.loss(x, [DataSample(), DataSample()])['loss'])
    with pytest.raises(ValueError, match='only 1 of 2'):
        model.loss(x, [DataSample().set_mask(torch.ones(7, 7).bool()), DataSample()])


def cell_image(seed: int, size: int = 64, grid: int = 8):
    """An image whose pixels carry the id of their cell of a grid x grid partition, and that
    partition as a part map (ids 0..grid²-1, all distinct, shuffled)."""
    ids = np.random.default_rng(seed).permutation(grid * grid).reshape(grid, grid)
    cell = size // grid
    img = np.repeat(np.repeat(ids, cell, 0), cell, 1).astype(np.uint8)
    return np.stack([img, 255 - img, img], -1), ids.astype(np.uint8)


@pytest.mark.parametrize('direction', ['horizontal', 'vertical'])
def test_crop_and_flip_keep_image_and_part_map_aligned(direction):
    # 40² output = 8 cells of 5 pixels: a cell's centre pixel samples the source point the part
    # map samples, so with nearest resizing the image there shows exactly the part id. Only when
    # that point lies exactly on a source cell border may the resize's float rounding pick the
    # neighbour cell: those (few) cells are left out.
    crop = TRANSFORMS.build(dict(type='RandomResizedCropWithPartMap', scale=40,
                                 crop_ratio_range=(0.2, 1.0), interpolation='nearest',
                                 backend='pillow'))
    flip = TRANSFORMS.build(dict(type='RandomFlipWithPartMap', prob=0.5, direction=direction))
    flipped = checked = 0
    for seed in range(40):
        img, ids = cell_image(seed)
        np.random.seed(seed)
        top, left, height, width = crop.rand_crop_params(img)
        np.random.seed(seed)  # the crop below draws the same box
        out = flip(crop(dict(img=img, part_ids=ids)))
        centre = (np.arange(8) + 0.5) / 8
        on_border = [np.isclose((start + centre * size) % 8, 0)
                     for start, size in ((top, height), (left, width))]
        tie = on_border[0][:, None] | on_border[1][None, :]
        if out['flip']:
            flipped += 1
            tie = mmcv.imflip(tie, direction)
        assert out['part_ids'].shape == (8, 8) and out['part_ids'].flags.c_contiguous
        assert out['img'].shape[:2] == (40, 40)
        centres = out['img'][2::5, 2::5, 0]
        np.testing.assert_array_equal(centres[~tie], out['part_ids'][~tie], f'seed {seed}')
        checked += (~tie).sum()
    assert 0 < flipped < 40 and checked > 0.8 * 40 * 64


def test_crop_part_map_is_exact_on_a_known_box():
    from mim_plugins.datasets.part_maps import crop_part_map
    ids = np.arange(16).reshape(4, 4)
    # the right half of a 40x40 image (cells 10 px): output cells sample columns 2 and 3
    out = crop_part_map(ids, (40, 40), (0, 20, 40, 20))
    np.testing.assert_array_equal(out, ids[:, [2, 2, 3, 3]])


def load(tmp_path, part_map=None, grid=GRID, num_parts=3, write=True):
    img_prefix = str(tmp_path / 'img')
    img_path = osp.join(img_prefix, 'cls', 'x.jpg')
    if write:
        mmcv.imwrite(part_map, osp.join(str(tmp_path / 'parts'), 'cls', 'x.png'))
    transform = TRANSFORMS.build(dict(type='LoadPartMap', part_root=str(tmp_path / 'parts'),
                                      img_prefix=img_prefix, grid=grid, num_parts=num_parts))
    return transform(dict(img_path=img_path))


def test_part_map_is_read_from_the_mirrored_path(tmp_path):
    out = load(tmp_path, THREE_PARTS.astype(np.uint8))
    assert out['part_ids'].dtype == np.uint8
    np.testing.assert_array_equal(out['part_ids'], THREE_PARTS)


@pytest.mark.parametrize('case,match', [
    ('missing', 'does not exist'),
    ('wrong grid', r'expected uint8 \(4, 4\)'),
    ('colour', r'\(4, 4, 3\)'),
    ('16 bit', 'uint16'),
    ('id out of range', 'holds part id 5'),
    ('outside prefix', 'not under img_prefix'),
])
def test_bad_part_maps_give_one_clear_error_naming_the_image(tmp_path, case, match):
    maps = {'wrong grid': np.zeros((5, 5), np.uint8),
            'colour': np.zeros((4, 4, 3), np.uint8),
            '16 bit': np.zeros((4, 4), np.uint16),
            'id out of range': np.full((4, 4), 5, np.uint8)}
    with pytest.raises(UserInputError, match=match) as err:
        if case == 'outside prefix':
            TRANSFORMS.build(dict(type='LoadPartMap', part_root=str(tmp_path), img_prefix='/a',
                                  grid=4))(dict(img_path='/b/x.jpg'))
        else:
            load(tmp_path, maps.get(case), write=case != 'missing')
    message = str(err.value)
    assert ('x.jpg' in message) and 'Fix' in message


def test_generator_and_hook_refuse_a_missing_epoch_or_preprocessor():
    generator = MODELS.build(dict(type='SemanticPartMaskGenerator'))
    with pytest.raises(RuntimeError, match='SemMAELambdaHook'):
        generator(1, torch.zeros(1, 4, 4, dtype=torch.long))
    generator.set_epoch(0, 2)
    with pytest.raises(ValueError, match='LoadPartMap'):
        generator(1, None)
    from types import SimpleNamespace

    from mmpretrain.registry import HOOKS
    plain = SimpleNamespace(data_preprocessor=MODELS.build(dict(type='SelfSupDataPreprocessor')))
    hook = HOOKS.build(dict(type='SemMAELambdaHook'))
    with pytest.raises(TypeError, match='MaskingDataPreprocessor'):
        hook.before_train_epoch(SimpleNamespace(model=plain, epoch=0, max_epochs=1))
    from mmengine.runner import IterBasedTrainLoop
    iter_loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    with pytest.raises(TypeError, match='EpochBasedTrainLoop'):
        hook.before_train(SimpleNamespace(train_loop=iter_loop))


def test_preprocessor_adds_nothing_outside_training_and_exposes_mean_std(tiny_data, tmp_path):
    part_root = write_maps(tiny_data, str(tmp_path / 'parts'), THREE_PARTS)
    model = MODELS.build(tiny_semmae(dict(type='SemanticPartMaskGenerator',
                                          lam_schedule='constant')))
    dataset = DATASETS.build(tiny_dataset(tiny_data, part_root, 3))
    data = model.data_preprocessor(default_collate([dataset[0], dataset[1]]), False)
    assert all('mask' not in s for s in data['data_samples'])
    assert model.data_preprocessor.mean.flatten().tolist() == [127.5] * 3
    with pytest.raises(ValueError, match='already carry a mask'):
        batch = default_collate([dataset[0]])
        batch['data_samples'][0].set_mask(torch.zeros(4, 4))
        model.data_preprocessor(batch, True)


def test_checkpoint_loads_into_the_stock_vision_transformer(tmp_path):
    model = MODELS.build(tiny_semmae(dict(type='RandomMaskGenerator')))
    model.init_weights()
    ckpt = str(tmp_path / 'semmae.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
    arch = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)
    encoder = _load_checkpoint_with_prefix('backbone.', ckpt)
    # linear-probe layout (cls token after the final norm): every key matches; fine-tune layout
    # (global pool): MAE's final norm is replaced by a new one after the pooling, as in MAE
    ln1, ln2 = {'ln1.weight', 'ln1.bias'}, {'ln2.weight', 'ln2.bias'}
    for extra, new_keys, dropped in ((dict(out_type='cls_token', final_norm=True), set(), set()),
                                     (dict(out_type='avg_featmap', final_norm=False), ln2, ln1)):
        vit = MODELS.build(dict(type='VisionTransformer', arch=arch, img_size=28, patch_size=7,
                                **extra))
        missing, unexpected = vit.load_state_dict(encoder, strict=False)
        assert set(missing) == new_keys and set(unexpected) == dropped
    # the fine-tune route: Pretrained init_cfg, and at twice the input size (SemMAE's 112² -> 224²
    # with the same patch) the position embedding is resized on load
    vit = MODELS.build(dict(type='VisionTransformer', arch=arch, img_size=56, patch_size=7,
                            init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')))
    vit.init_weights()
    assert vit.pos_embed.shape == (1, 1 + 64, 32)
    torch.testing.assert_close(vit.patch_embed.projection.weight,
                               model.backbone.patch_embed.projection.weight)
    torch.testing.assert_close(vit.layers[0].ffn.layers[1].weight,
                               model.backbone.layers[0].ffn.layers[1].weight)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_demo_config_trains_two_iterations_with_tools_train(tiny_data, tmp_path):
    cfg = 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
    img_prefix = osp.join(tiny_data, 'train')
    part_root = make_part_maps(img_prefix, str(tmp_path / 'parts'), grid=7, num_parts=7)
    work = tmp_path / 'work'
    result = subprocess.run(
        [sys.executable, 'tools/train.py', cfg, '--work-dir', str(work), '--cfg-options',
         f'train_dataloader.dataset.data_root={tiny_data}',
         f'train_dataloader.dataset.pipeline.1.part_root={part_root}',
         f'train_dataloader.dataset.pipeline.1.img_prefix={img_prefix}',
         'train_dataloader.batch_size=10', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
         'default_hooks.logger.interval=1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'Epoch(train) [1][2/2]' in log and 'loss:' in log
    assert 'mask_lambda: 0.0000' in log  # λ(0) of a 1-epoch run: pure inter-part masking
    assert osp.isfile(work / 'epoch_1.pth')
