"""The web demo's inference, without a browser: masks, renderers (what the algorithms'
``reconstruct`` returns, drawn), part maps, panels, errors."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from conftest import ROOT
from test_attention import MAE_CFG, save_tiny_mae
from mim_plugins.masking import num_masked, random_mask, semantic_part_mask
from mim_plugins.models.mask_generators import (BlockMaskGenerator, RandomMaskGenerator,
                                                SemanticPartMaskGenerator)
from mim_plugins.utils.errors import UserInputError
from mim_plugins.visualization.images import square_resize, upscale
from mim_plugins.visualization.loading import denormalise, load_model, normalise
from mim_plugins.visualization.part_masks import MASK_GRAY
from mim_plugins.webapp import PANELS, Request, compute_views, draw_masks, examples, render
from mim_plugins.webapp.checkpoints import find_checkpoints
from mim_plugins.webapp.masks import block_min_patches
from mim_plugins.webapp.parts import kmeans, stage1_parts
from mim_plugins.webapp.renderers import gray_outside, hog_picture, unpatch_hog

SUPMAE_CFG = ROOT + '/configs/supmae/supmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FINETUNE_CFG = ROOT + '/configs/mae/benchmarks/vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py'
MASKFEAT_CFG = ROOT + '/configs/maskfeat/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py'


@pytest.fixture(scope='module')
def mae_ckpt(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp('webapp') / 'mae.pth')
    save_tiny_mae(path)
    return path


def digit() -> str:
    return examples()['mnist_val_digit3']


def cells(mask: torch.Tensor, grid=(7, 7), side: int = 224) -> np.ndarray:
    """(L,) patch mask -> (side, side) pixel mask."""
    return upscale(np.repeat(mask.view(grid).numpy()[..., None].astype(np.uint8), 3, -1),
                   side)[..., 0].astype(bool)


@pytest.mark.parametrize('strategy', ['random', 'block', 'part-guided', 'separate'])
def test_masks_have_exact_counts_and_follow_the_seed(strategy):
    parts = np.repeat(np.arange(7), 7).reshape(7, 7)
    kw = dict(lam=0.0, predicted_ratio=0.5, part_ids=parts)
    hidden, predicted = draw_masks(strategy, (7, 7), 0.75, seed=3, **kw)
    assert hidden.dtype == torch.bool and hidden.shape == (49, )
    assert int(hidden.sum()) == num_masked(49, 0.75) == 37
    again = draw_masks(strategy, (7, 7), 0.75, seed=3, **kw)
    assert torch.equal(again[0], hidden) and torch.equal(again[1], predicted)
    other = draw_masks(strategy, (7, 7), 0.75, seed=4, **kw)
    assert not torch.equal(other[0], hidden)
    if strategy == 'separate':
        assert int(predicted.sum()) == num_masked(49, 0.5) == 25
        assert not torch.equal(hidden, predicted)
    else:
        assert torch.equal(hidden, predicted)


def test_part_guided_masks_are_semmae_masks():
    parts = np.repeat(np.arange(7), 7).reshape(7, 7)  # part p = row p
    for lam in (0.0, 1.0):
        hidden, _ = draw_masks('part-guided', (7, 7), 0.75, seed=5, lam=lam, part_ids=parts)
        want = semantic_part_mask(torch.from_numpy(parts).flatten(), 0.75, lam,
                                  generator=torch.Generator().manual_seed(5))[0]
        assert torch.equal(hidden, want)
    per_row = hidden.view(7, 7).sum(1)  # λ=1, intra-part: every part (row) ~75% masked
    assert per_row.min() >= 4 and per_row.max() <= 6


def test_mask_errors():
    with pytest.raises(UserInputError, match='mask ratio 0.99 does not fit the 7x7'):
        draw_masks('random', (7, 7), 0.99, seed=0)
    with pytest.raises(UserInputError, match='Unknown masking strategy'):
        draw_masks('checkerboard', (7, 7), 0.5, seed=0)
    with pytest.raises(UserInputError, match='need a part map'):
        draw_masks('part-guided', (7, 7), 0.5, seed=0)


def test_masks_are_the_training_generators_draws():
    """Each strategy is the draw of the generator a config would train with, from one
    ``torch.Generator`` seeded with the seed (the separate set drawn second)."""
    parts = np.random.default_rng(0).integers(0, 5, (14, 14))
    ids = torch.from_numpy(parts).long()[None]

    def seeded(seed):
        return torch.Generator().manual_seed(seed)

    gen = seeded(9)
    want = {
        'random': RandomMaskGenerator(0.6, 14)(1, None, None, seeded(9)),
        'block': BlockMaskGenerator(0.6, 14, min_block=block_min_patches(196))(
            1, None, None, seeded(9)),
        'part-guided': SemanticPartMaskGenerator(0.6, 'constant', lam_value=0.3)(
            1, ids, None, seeded(9)),
        'separate': (RandomMaskGenerator(0.6, 14)(1, None, None, gen),
                     RandomMaskGenerator(0.5, 14)(1, None, None, gen)),
    }
    for strategy, masks in want.items():
        hidden, predicted = draw_masks(strategy, (14, 14), 0.6, seed=9, lam=0.3,
                                       predicted_ratio=0.5, part_ids=parts)
        hidden_want, predicted_want = masks if strategy == 'separate' else (masks, masks)
        assert torch.equal(hidden, hidden_want.flatten()), strategy
        assert torch.equal(predicted, predicted_want.flatten()), strategy
    with pytest.raises(UserInputError, match='outside'):
        draw_masks('part-guided', (14, 14), 0.6, seed=0, lam=1.5, part_ids=parts)


def test_kmeans_recovers_separated_clusters():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10., 0.], [0., 10.], [-10., -10.]])
    sizes = [5, 20, 10]
    x = torch.cat([c + 0.1 * torch.randn(n, 2, generator=gen) for c, n in zip(centres, sizes)])
    labels = kmeans(x, 3)
    # numbered by size: the 20-point cluster is 0, the 10-point one 1, the 5-point one 2
    assert labels[:5].unique().tolist() == [2]
    assert labels[5:25].unique().tolist() == [0]
    assert labels[25:].unique().tolist() == [1]


def test_views_of_the_mae(mae_ckpt):
    req = Request(image=digit(), config=MAE_CFG, checkpoint=mae_ckpt, seed=1, query=(1, 2))
    views = compute_views(req)
    assert set(views.panels) == set(PANELS) and views.grid == (7, 7) and views.query == (1, 2)
    assert views.panels['part map'] is None  # only for part-guided masks
    image = upscale(square_resize(np.array(Image.open(digit()).convert('RGB')), 28), 224)
    assert np.array_equal(views.panels['input'], image)
    hidden, _ = draw_masks('random', (7, 7), 0.75, seed=1)
    gray = cells(hidden)
    assert (views.panels['masked input'][gray] == MASK_GRAY).all()
    assert np.array_equal(views.panels['masked input'][~gray], image[~gray])
    composite, recon = views.panels['reconstruction + visible'], views.panels['reconstruction']
    assert np.abs(composite[~gray].astype(int) - image[~gray]).max() <= 1
    assert np.array_equal(composite[gray], recon[gray])
    assert any('37 of 49 patches hidden' in note for note in views.notes)
    # the attention panel follows the query; the masks follow the seed
    moved = compute_views(Request(image=digit(), config=MAE_CFG, checkpoint=mae_ckpt, seed=2,
                                  query=(5, 5)))
    assert not np.array_equal(moved.panels['attention'], views.panels['attention'])
    assert not np.array_equal(moved.panels['masked input'], views.panels['masked input'])
    off_grid = compute_views(Request(image=digit(), config=MAE_CFG, checkpoint=mae_ckpt,
                                     query=(9, 9)))
    assert off_grid.query == (3, 3)


def test_separate_masks_show_the_predicted_set(mae_ckpt):
    req = Request(image=digit(), config=MAE_CFG, checkpoint=mae_ckpt, strategy='separate',
                  mask_ratio=0.5, predicted_ratio=0.75, seed=7)
    views = compute_views(req)
    hidden, predicted = draw_masks('separate', (7, 7), 0.5, seed=7, predicted_ratio=0.75)
    composite = views.panels['reconstruction + visible']
    only_hidden = cells(hidden & ~predicted)
    assert only_hidden.any()
    assert (composite[only_hidden] == MASK_GRAY).all()
    shown = cells(predicted)
    assert np.array_equal(composite[shown], views.panels['reconstruction'][shown])
    assert (views.panels['masked input'][cells(hidden)] == MASK_GRAY).all()


def test_part_map_from_stage1_centroids_or_per_image(mae_ckpt, tmp_path):
    from mim_plugins.parts.features import build_frozen_vit
    from mim_plugins.parts.part_learner import load_image, part_ids_of

    per_image = compute_views(Request(image=digit(), config=MAE_CFG, checkpoint=mae_ckpt,
                                      strategy='part-guided', centroids=None, num_parts=5))
    assert per_image.panels['part map'].shape == (224, 224, 3)
    assert any('per-image k-means (5 parts)' in n for n in per_image.notes)

    centroids = torch.nn.functional.normalize(torch.randn(7, 192), dim=-1)
    path = str(tmp_path / 'centroids.pth')
    torch.save(dict(centroids=centroids, num_parts=7, grid=(7, 7), config=MAE_CFG,
                    checkpoint=mae_ckpt), path)
    views = compute_views(Request(image=digit(), config=MAE_CFG, checkpoint=mae_ckpt,
                                  strategy='part-guided', centroids=path, lam=1.0))
    assert any('stage-1 parts' in n and path in n for n in views.notes)
    # the same ids the stage-1 tool writes for this image
    vit, norm = build_frozen_vit(MAE_CFG, mae_ckpt)
    want = part_ids_of(vit, load_image(digit(), (28, 28), **norm)[None], centroids, (7, 7))[0]
    image = np.array(Image.open(digit()).convert('RGB'))
    ids = stage1_parts(image, path, (7, 7))
    assert np.array_equal(ids, want)
    hidden, _ = draw_masks('part-guided', (7, 7), 0.75, seed=0, lam=1.0, part_ids=ids)
    assert (views.panels['masked input'][cells(hidden)] == MASK_GRAY).all()


def test_bad_inputs_are_explained(mae_ckpt, tmp_path):
    corrupt = tmp_path / 'broken.png'
    corrupt.write_bytes(b'\x89PNG\r\n\x1a\n not really')
    with pytest.raises(UserInputError, match="Corrupt or unreadable image 'upload.png'"):
        compute_views(Request(image=str(corrupt), image_name='upload.png', config=MAE_CFG,
                              checkpoint=mae_ckpt))
    small = tmp_path / 'small.png'
    Image.fromarray(np.zeros((10, 30), np.uint8)).save(small)
    with pytest.raises(UserInputError, match=r'30x10 pixels, too small.*at least 14x14'):
        compute_views(Request(image=str(small), config=MAE_CFG, checkpoint=mae_ckpt))
    with pytest.raises(UserInputError, match=r'another architecture.*lacks 9 of.*cls_head'):
        compute_views(Request(image=digit(), config=SUPMAE_CFG, checkpoint=mae_ckpt))
    with pytest.raises(UserInputError, match='does not exist'):
        compute_views(Request(image=digit(), config=MAE_CFG, checkpoint=str(tmp_path / 'no')))

    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    classifier = MODELS.build(Config.fromfile(FINETUNE_CFG).model)
    clf_ckpt = str(tmp_path / 'clf.pth')
    torch.save({'state_dict': classifier.state_dict()}, clf_ckpt)
    with pytest.raises(UserInputError, match=r'cannot show a ImageClassifier model: it has no '
                       r'reconstruct.*Fix: choose a pretraining config'):
        compute_views(Request(image=digit(), config=FINETUNE_CFG, checkpoint=clf_ckpt))


def test_maskfeat_renders_hog(tmp_path):
    cfg_file = tmp_path / 'maskfeat_tiny.py'
    cfg_file.write_text(
        f"_base_ = ['{MASKFEAT_CFG}']\n"
        "model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=32, num_layers=1,\n"
        "                                     num_heads=2, feedforward_channels=64)),\n"
        "             neck=dict(in_channels=32))\n")
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(cfg_file)).model)
    ckpt = str(tmp_path / 'maskfeat.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)  # stock MaskFeat's weights
    model, _ = load_model(str(cfg_file), ckpt)  # with the config's data preprocessor
    assert type(model).__name__ == 'MaskedMaskFeat'  # built as ours: it has reconstruct

    # the inverse of HOGGenerator's patch layout
    gen = model.target_generator
    x = torch.randn(2, 3, 224, 224)
    feats = gen(x)  # (2, 196, 108)
    assert torch.equal(unpatch_hog(feats, (14, 14), gen.nbins), gen.out)

    photo = tmp_path / 'photo.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 260, 3), np.uint8)).save(
        photo)
    views = compute_views(Request(image=str(photo), config=str(cfg_file), checkpoint=ckpt,
                                  strategy='block', mask_ratio=0.4))
    assert views.grid == (14, 14) and views.panels['reconstruction'].shape == (224, 224, 3)
    assert any('HOG features' in n for n in views.notes)
    inputs = normalise(model.data_preprocessor,
                       torch.from_numpy(square_resize(np.array(Image.open(photo)), 224)[None]))
    hidden, _ = draw_masks('block', (14, 14), 0.4, seed=0)
    rendered = render(model, inputs, hidden, hidden)
    assert np.array_equal(views.panels['reconstruction'], rendered.prediction)
    # MaskFeat's own pieces, as its loss runs them: mask tokens at the hidden patches, the neck
    # on every row, the cls row dropped; every patch predicted
    with torch.no_grad():
        latent = model.backbone(inputs, hidden[None])
        pred = model.neck((latent.reshape(-1, latent.shape[-1]), ))[0].view(1, 197, -1)[:, 1:]
        target = gen(inputs)
    assert np.array_equal(rendered.reference, hog_picture(gen, target, (14, 14)))
    assert np.array_equal(rendered.prediction, hog_picture(gen, pred, (14, 14)))
    assert 'of every patch' in rendered.what
    visible = cells(~hidden, (14, 14))
    assert np.array_equal(views.panels['reconstruction + visible'][visible],
                          rendered.reference[visible])
    # its encoder hides exactly what it predicts: separate masks are refused, not half-used
    other = draw_masks('separate', (14, 14), 0.4, seed=0, predicted_ratio=0.6)
    with pytest.raises(UserInputError, match='MaskedMaskFeat .*cannot take separate masks'):
        render(model, inputs, *other)


def test_find_checkpoints(tmp_path, mae_ckpt):
    import shutil
    for name, cfg in (('mae_run', MAE_CFG), ('finetune_run', FINETUNE_CFG),
                      ('maskfeat_run', MASKFEAT_CFG)):
        run = tmp_path / name
        run.mkdir()
        Config.fromfile(cfg).dump(str(run / osp.basename(cfg)))  # as tools/train.py does
        shutil.copy(mae_ckpt, run / 'epoch_1.pth')
        (run / 'last_checkpoint').write_text(str(run / 'epoch_1.pth'))
    found = find_checkpoints(str(tmp_path))
    mine = {k: v for k, v in found.items() if str(tmp_path) in v[1]}
    # stock MAE / MaskFeat are drawn as ours; the classifier has no reconstruct: not offered
    assert list(mine) == ['mae_run (MAE)', 'maskfeat_run (MaskedMaskFeat)']
    assert mine['mae_run (MAE)'][1] == str(tmp_path / 'mae_run' / 'epoch_1.pth')


def test_app_callbacks(mae_ckpt):
    import gradio as gr

    from mim_plugins.webapp.app import DemoApp

    app = DemoApp({'tiny': (MAE_CFG, mae_ckpt)}, 'tiny')
    source = app.pick_example('mnist_val_digit3')
    args = ['tiny', '', '', '', 'block', 0.5, 0.5, 0.75, 0, -1, None]
    out = app.update(source, *args)
    assert len(out) == len(PANELS) + 2
    assert all(isinstance(p, np.ndarray) for p in out[:4]) and out[4] is None
    assert '25 of 49 patches hidden' in out[-2] and out[-1] == (7, 7, 224)
    assert app.update(None, *args)[-2].startswith('**Error:** No image')
    half = app.update(source, 'tiny', MAE_CFG, '', *args[3:])
    assert 'needs both a config file and a checkpoint file' in half[-2]
    assert all(p is None for p in half[:len(PANELS)])
    nothing = DemoApp({}, None).update(source, None, '', '', *args[3:])
    assert 'make demo' in nothing[-2]
    click = gr.SelectData(None, dict(index=[223, 40], value=None))
    assert DemoApp.click((7, 7, 224), click) == (1, 6)


# ---- BEiT and SemanticMIM's bottleneck models (BEiT, MaskFeat, MAE) ---------------------------
BEIT_BN_CFG = ROOT + '/configs/beit/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py'
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
VOCAB = 16  # tiny DALL-E vocabulary
SELFSUP = dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
               std=[58.395, 57.12, 57.375], to_rgb=True)
# 16 patches: 0-3 hidden only, 4-7 hidden and predicted, 8-11 predicted only, 12-15 neither
HIDDEN = torch.arange(16) < 8
PREDICTED = (torch.arange(16) >= 4) & (torch.arange(16) < 12)


def build_tiny(cfg: dict) -> torch.nn.Module:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.eval()
    return model.requires_grad_(False)


def random_image(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)


def beit(kind: str, img: int = 64, patch: int = 16) -> torch.nn.Module:
    """A tiny BEiT (4x4 patches of 16² on 64² images, second view 32²: BEiT's 224 -> 112 ratio)
    with the shipped config's own two-view data preprocessor."""
    from mim_plugins.visualization import masked_algorithm
    two_norm = Config.fromfile(BEIT_BN_CFG).data_preprocessor.preprocessor
    backbone = 'BottleneckBEiTViT' if kind == 'BottleneckBEiT' else 'BEiTPretrainViT'
    return build_tiny(masked_algorithm(dict(  # stock BEiT as the demo loads it
        type=kind, data_preprocessor=two_norm,
        backbone=dict(type=backbone, arch=ARCH, img_size=img, patch_size=patch),
        head=dict(type='BEiTV1Head', embed_dims=32, num_embed=VOCAB,
                  loss=dict(type='CrossEntropyLoss')),
        target_generator=dict(type='DALL-E', n_hid=4, vocab_size=VOCAB))))


def one_token(weight: torch.Tensor, bias: torch.Tensor, token: int) -> None:
    """Make a linear / 1x1-conv classifier answer ``token`` whatever its input."""
    weight.zero_()
    bias.zero_()
    bias[token] = 1.


def record_masks(backbone: torch.nn.Module) -> dict:
    """The ``mask`` and ``input_mask`` each encoding of ``backbone`` receives: its
    ``encode(x, mask, input_mask)`` (ours) or ``backbone(x, mask)`` (a stock one, through the
    adapter)."""
    from mim_plugins.models.masked_encoding import MaskedEncoder
    seen = {}
    if isinstance(backbone, MaskedEncoder):
        encode = backbone.encode

        def spy(x, mask, input_mask=None):
            seen['mask'], seen['input_mask'] = mask.flatten(), input_mask
            return encode(x, mask, input_mask)
        backbone.encode = spy
        return seen

    def hook(module, args):
        seen['mask'] = args[1].flatten()
        seen['input_mask'] = args[2] if len(args) > 2 else None
    backbone.register_forward_pre_hook(hook)
    return seen


def test_token_colours_are_fixed_and_distinct():
    from mim_plugins.webapp.renderers import token_colours
    colours = token_colours(np.arange(8192))
    assert colours.dtype == np.uint8 and colours.shape == (8192, 3)
    assert len(np.unique(colours, axis=0)) == 8192  # DALL-E's whole vocabulary
    assert not (colours == MASK_GRAY).all(-1).any()
    assert np.array_equal(token_colours(np.array([[7, 4095]])), colours[[[7, 4095]]])


@pytest.mark.parametrize('kind', ['BEiT', 'BottleneckBEiT'])
def test_beit_renders_predicted_and_reference_tokens(kind):
    from mim_plugins.webapp.renderers import token_colours, token_picture
    import mmcv
    model = beit(kind)
    assert type(model).__name__ == ('MaskedBEiT' if kind == 'BEiT' else kind)
    image = random_image(64)
    inputs = normalise(model.data_preprocessor, torch.from_numpy(image[None]))
    pre = model.data_preprocessor  # first view: ImageNet mean/std, as the preprocessor does
    torch.testing.assert_close(inputs, (torch.from_numpy(image).permute(2, 0, 1)[None].float()
                                        - pre.mean) / pre.std)
    seen = {}
    model.target_generator.register_forward_pre_hook(lambda m, args: seen.update(view=args[0]))
    # separate masks only where the encoder takes them (the bottleneck); stock BEiT puts its
    # mask tokens on the predicted patches, so it is shown those as hidden
    hidden = HIDDEN if kind == 'BottleneckBEiT' else PREDICTED
    if kind == 'BEiT':
        with pytest.raises(UserInputError, match='cannot take separate masks'):
            render(model, inputs, HIDDEN, PREDICTED)
    out = render(model, inputs, hidden, PREDICTED)
    assert out.prediction.shape == out.reference.shape == (64, 64, 3)
    # the picture is the algorithm's own prediction, gray where it predicts nothing
    separate = None if kind == 'BEiT' else HIDDEN[None]
    tokens = model.reconstruct(inputs, PREDICTED[None], separate)['tokens'][0]
    assert np.array_equal(out.prediction, gray_outside(token_picture(tokens, (4, 4), (64, 64)),
                                                       PREDICTED, (4, 4)))
    # the tokenizer's view: Lanczos to 32², then DALL-E's map 0..255 -> 0.1..0.9 (TwoNorm)
    small = mmcv.imresize(image, (32, 32), interpolation='lanczos').astype(np.float32)
    torch.testing.assert_close(seen['view'][0].permute(1, 2, 0),
                               torch.from_numpy(small / 255 * 0.8 + 0.1))
    # gray where nothing is predicted; elsewhere one palette colour per patch
    gray = cells(~PREDICTED, (4, 4), 64)
    assert (out.prediction[gray] == MASK_GRAY).all()
    palette = token_colours(np.arange(VOCAB))
    blocks = out.prediction.reshape(4, 16, 4, 16, 3).transpose(0, 2, 1, 3, 4).reshape(16, -1, 3)
    for block in blocks[PREDICTED.numpy()]:
        assert (block == block[0]).all() and (palette == block[0]).all(-1).any()

    # the ids are the head's argmax and the tokenizer's argmax
    one_token(model.head.cls_head.weight, model.head.cls_head.bias, 5)
    conv = model.target_generator.blocks.output.conv
    one_token(conv.w, conv.b, 3)
    out = render(model, inputs, hidden, PREDICTED)
    assert (out.prediction[~gray] == palette[5]).all() and (out.reference == palette[3]).all()
    assert '0 of 8 predicted tokens equal them' in out.note
    one_token(conv.w, conv.b, 5)
    assert '8 of 8 predicted' in render(model, inputs, hidden, PREDICTED).note


def tiny_bottleneck_mae() -> torch.nn.Module:
    return build_tiny(dict(
        type='BottleneckMAE', data_preprocessor=SELFSUP,
        backbone=dict(type='BottleneckMAEViT', arch=ARCH, img_size=32, patch_size=8,
                      num_cls_tokens=2),
        neck=dict(type='BottleneckMAEDecoder', num_patches=16, patch_size=8, embed_dim=32,
                  decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', patch_size=8, norm_pix=True,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2'))))


def test_bottleneck_mae_renders_pixels_of_the_predicted_patches():
    model = tiny_bottleneck_mae()
    image = random_image(32)
    inputs = normalise(model.data_preprocessor, torch.from_numpy(image[None]))
    seen = record_masks(model.backbone)
    model.neck.register_forward_pre_hook(lambda m, args: seen.update(cls=args[0],
                                                                     pred=args[1]))
    out = render(model, inputs, HIDDEN, PREDICTED)
    # the encoder hides the hidden set; the decoder gets the 2 cls latents and the predicted set
    assert torch.equal(seen['mask'], PREDICTED) and torch.equal(seen['input_mask'][0], HIDDEN)
    assert seen['cls'].shape == (1, 2, 32)
    assert torch.equal(seen['pred'][0], PREDICTED.nonzero().flatten())  # predicted patch ids
    assert out.prediction.shape == (32, 32, 3) and np.array_equal(out.reference, image)
    assert 'predicted patches only' in out.what
    gray = cells(~PREDICTED, (4, 4), 32)
    assert (out.prediction[gray] == MASK_GRAY).all()
    assert not (out.prediction[~gray] == MASK_GRAY).all()
    pixels = model.reconstruct(inputs, PREDICTED[None], HIDDEN[None])['pixels']
    picture = denormalise(model.data_preprocessor, pixels)[0].numpy()
    assert np.array_equal(out.prediction[~gray], picture[~gray])

    # a decoder that predicts 0 (norm_pix space) gives each predicted patch its own mean back
    model.neck.decoder_pred.weight.zero_()
    model.neck.decoder_pred.bias.zero_()
    out = render(model, inputs, HIDDEN, PREDICTED)
    means = inputs[0].reshape(3, 4, 8, 4, 8).permute(1, 3, 0, 2, 4).reshape(16, -1).mean(-1)
    pre = model.data_preprocessor
    colours = (means[:, None] * pre.std.flatten() + pre.mean.flatten()).round().byte().numpy()
    blocks = out.prediction.reshape(4, 8, 4, 8, 3).transpose(0, 2, 1, 3, 4).reshape(16, 64, 3)
    for i in np.flatnonzero(PREDICTED.numpy()):
        assert np.abs(blocks[i].astype(int) - colours[i]).max() <= 1


def test_rendering_follows_what_reconstruct_returns():
    """The drawing is chosen by ``reconstruct``'s keys, whatever the class is called."""
    model = tiny_bottleneck_mae()
    inputs = normalise(model.data_preprocessor, torch.from_numpy(random_image(32)[None]))
    model.__class__ = type('AnyName', (type(model), ), {})
    assert np.array_equal(render(model, inputs, HIDDEN, PREDICTED).reference,
                          random_image(32))

    class Depth(type(model)):
        def reconstruct(self, inputs, mask, input_mask=None):
            return dict(depth=inputs[:, :1], where=mask)
    model.__class__ = Depth
    with pytest.raises(UserInputError, match=r'returned depth, where; the demo draws pixels, '
                       r'hog, tokens\. Fix:'):
        render(model, inputs, HIDDEN, PREDICTED)


def test_bottleneck_maskfeat_renders_hog_of_the_predicted_patches():
    model = build_tiny(dict(
        type='BottleneckMaskFeat', data_preprocessor=SELFSUP,
        backbone=dict(type='BottleneckMaskFeatViT', arch=ARCH, img_size=224, patch_size=16,
                      num_cls_tokens=2),
        neck=dict(type='LinearNeck', in_channels=32, out_channels=108, norm_cfg=None),
        head=dict(type='MIMHead', loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        target_generator=dict(type='HOGGenerator')))
    inputs = normalise(model.data_preprocessor, torch.from_numpy(random_image(224)[None]))
    gen = torch.Generator().manual_seed(0)
    hidden = random_mask(1, 196, 0.5, generator=gen)[0]
    predicted = random_mask(1, 196, 0.75, generator=gen)[0]
    out = render(model, inputs, hidden, predicted)
    hog = model.target_generator
    assert np.array_equal(out.reference, hog_picture(hog, hog(inputs), (14, 14)))
    gray = cells(~predicted, (14, 14), 224)
    assert (out.prediction[gray] == MASK_GRAY).all()
    # the picture draws reconstruct's HOG at the predicted patches, the others left out
    feats = model.reconstruct(inputs, predicted[None], hidden[None])['hog']
    feats = feats * predicted[None, :, None]
    assert np.array_equal(out.prediction,
                          gray_outside(hog_picture(hog, feats, (14, 14)), predicted, (14, 14)))
    # the encoder hides the hidden set (not the predicted one): another hidden set, another
    # prediction of the same patches
    other = random_mask(1, 196, 0.5, generator=gen)[0]
    assert not np.array_equal(render(model, inputs, other, predicted).prediction, out.prediction)
    # a constant HOG prediction is drawn as such
    feature = torch.rand(108, generator=gen)
    model.neck.fc.weight.zero_()
    model.neck.fc.bias.copy_(feature)
    out = render(model, inputs, hidden, predicted)
    feats = feature.expand(1, 196, 108) * predicted[None, :, None]
    assert np.array_equal(out.prediction,
                          gray_outside(hog_picture(hog, feats, (14, 14)), predicted, (14, 14)))
    assert out.prediction[~gray].max() > 0


def tiny_beit_config(tmp_path, dalle: str, name: str = 'beit_tiny.py') -> str:
    """The shipped BEiT-bottleneck config, tiny, its tokenizer's init_cfg naming ``dalle``."""
    path = tmp_path / name
    path.write_text(
        f"_base_ = ['{BEIT_BN_CFG}']\n"
        f"model = dict(backbone=dict(arch=dict(_delete_=True, **{ARCH!r}), img_size=64,\n"
        "                           patch_size=16),\n"
        f"             head=dict(embed_dims=32, num_embed={VOCAB}),\n"
        f"             target_generator=dict(n_hid=4, vocab_size={VOCAB},\n"
        f"                                   init_cfg=dict(checkpoint='{dalle}')))\n")
    return str(path)


def test_beit_views_and_the_tokenizer_weights(tmp_path):
    from mmpretrain.registry import MODELS
    missing = str(tmp_path / 'no_dalle.pth')
    config = tiny_beit_config(tmp_path, missing)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    state = model.state_dict()
    full = str(tmp_path / 'full.pth')  # a training checkpoint: the tokenizer is in it
    torch.save({'state_dict': state}, full)
    bare = str(tmp_path / 'bare.pth')  # as an official one: no tokenizer weights
    torch.save({'state_dict': {k: v for k, v in state.items()
                               if not k.startswith('target_generator.')}}, bare)
    photo = tmp_path / 'photo.png'
    Image.fromarray(random_image(80, seed=1)).save(photo)

    views = compute_views(Request(image=str(photo), config=config, checkpoint=full,
                                  strategy='separate', mask_ratio=0.5, predicted_ratio=0.75))
    assert views.grid == (4, 4) and all(views.panels[p] is not None for p in PANELS[:4])
    assert any('DALL-E token ids' in n for n in views.notes)
    assert any('weights come from the checkpoint' in n for n in views.notes)
    # the composite: predicted tokens, reference tokens on the other visible patches, gray
    hidden, predicted = draw_masks('separate', (4, 4), 0.5, seed=0, predicted_ratio=0.75)
    loaded, _ = load_model(config, full)
    inputs = normalise(loaded.data_preprocessor,
                       torch.from_numpy(square_resize(np.array(Image.open(photo)), 64)[None]))
    rendered = render(loaded, inputs, hidden, predicted)
    composite = views.panels['reconstruction + visible']
    assert composite.shape == (256, 256, 3)  # 64² shown at 4x
    for where, want in ((predicted, upscale(rendered.prediction, 256)),
                        (~hidden & ~predicted, upscale(rendered.reference, 256))):
        pixels = cells(where, (4, 4), 256)
        assert pixels.any() and np.array_equal(composite[pixels], want[pixels])
    assert (composite[cells(hidden & ~predicted, (4, 4), 256)] == MASK_GRAY).all()
    assert np.array_equal(views.panels['reconstruction'], upscale(rendered.prediction, 256))

    # no tokenizer in the checkpoint, and its file missing: random, said so, nothing fetched
    views = compute_views(Request(image=str(photo), config=config, checkpoint=bare))
    assert any('RANDOMLY' in n and missing in n for n in views.notes)
    # ... or read from the local file the config names
    dalle = str(tmp_path / 'dalle.pth')
    torch.save({'state_dict': model.target_generator.state_dict()}, dalle)
    from_file = tiny_beit_config(tmp_path, dalle, 'beit_tiny_dalle.py')
    loaded, _ = load_model(from_file, bare)
    assert loaded.target_generator.weights_from == dalle
    for key, value in model.target_generator.state_dict().items():
        assert torch.equal(loaded.target_generator.state_dict()[key], value)
    views = compute_views(Request(image=str(photo), config=from_file, checkpoint=bare))
    assert any(f'read from {dalle}' in n for n in views.notes)
