"""SupMAE: the supervised branch sees only visible patches, its loss, configs and checkpoints."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mim_plugins  # noqa: F401
import mim_plugins.models.heads  # noqa: F401  (registers VisibleTokenClsHead)
import mim_plugins.models.supmae  # noqa: F401  (registers SupMAE)
from conftest import ROOT, run_env

IN1K_CFG = 'configs/supmae/supmae_vit-base-p16_8xb512-coslr-400e_in1k.py'
DEMO_CFG = 'configs/supmae/supmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
FT_CFG = 'configs/supmae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
LP_CFG = 'configs/supmae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

IMG, PATCH, DIM, CLASSES = 16, 4, 32, 5  # 4x4 = 16 patches, 4 stay visible
ARCH = dict(embed_dims=DIM, num_layers=2, num_heads=2, feedforward_channels=64)


def tiny_supmae(head: str = 'mlp', pool: str = 'avg', ratio: float = 0.01,
                temperature: float = 10.0, backbone: str = 'SemMAEViT'):
    model = MODELS.build(tiny_cfg(head, pool, ratio, temperature, backbone))
    model.init_weights()
    return model


def tiny_cfg(head: str = 'mlp', pool: str = 'avg', ratio: float = 0.01,
             temperature: float = 10.0, backbone: str = 'SemMAEViT') -> dict:
    return dict(
        type='SupMAE',
        backbone=dict(type=backbone, arch=ARCH, img_size=IMG, patch_size=PATCH, mask_ratio=0.75),
        neck=dict(type='MAEPretrainDecoder', num_patches=(IMG // PATCH)**2, patch_size=PATCH,
                  in_chans=3, embed_dim=DIM, decoder_embed_dim=16, decoder_depth=1,
                  decoder_num_heads=2),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=PATCH,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        cls_head=dict(type='VisibleTokenClsHead', num_classes=CLASSES, in_channels=DIM,
                      pool=pool, head=head, hidden_channels=24, temperature=temperature),
        cls_loss_ratio=ratio)


def labelled(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def replace_patches(x: torch.Tensor, patch_mask: torch.Tensor, new: torch.Tensor):
    """``x`` (B, 3, H, W) with the pixels of the patches where ``patch_mask`` (B, L) is set
    taken from ``new``."""
    side = x.shape[-1] // PATCH
    pixels = patch_mask.bool().view(-1, side, side)
    pixels = pixels.repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)[:, None]
    return torch.where(pixels, new, x)


def branch_logits(model, x, seed):
    torch.manual_seed(seed)  # the same seed draws the same MAE mask
    latent, mask, _ = model.backbone(x)
    return model.cls_head(latent), mask


@pytest.mark.parametrize('pool', ['avg', 'cls'])
def test_branch_ignores_masked_patches_and_sees_visible_ones(pool):
    torch.manual_seed(0)
    model = tiny_supmae(pool=pool)
    x = torch.randn(4, 3, IMG, IMG)
    logits, mask = branch_logits(model, x, seed=1)
    assert mask.sum(1).tolist() == [12] * 4  # 12 of 16 patches masked per image

    noise = torch.randn_like(x) * 5
    x_masked_changed = replace_patches(x, mask, noise)
    assert not torch.equal(x_masked_changed, x)
    logits2, mask2 = branch_logits(model, x_masked_changed, seed=1)
    assert torch.equal(mask2, mask)
    assert torch.equal(logits2, logits)  # exactly: the branch never saw those pixels

    # the loss of the whole model agrees: loss_cls is unchanged, loss_rec (targets) is not
    y = labelled([0, 1, 2, 3])
    torch.manual_seed(1)
    before = model.loss(x, y)
    torch.manual_seed(1)
    after = model.loss(x_masked_changed, y)
    assert torch.equal(after['loss_cls'], before['loss_cls'])
    assert not torch.equal(after['loss_rec'], before['loss_rec'])

    one_visible = torch.zeros_like(mask)
    one_visible[0, (mask[0] == 0).nonzero()[0]] = 1
    logits3, _ = branch_logits(model, replace_patches(x, one_visible, noise), seed=1)
    assert not torch.allclose(logits3[0], logits[0])


def test_loss_equals_rec_plus_ratio_times_independent_ce():
    torch.manual_seed(0)
    ratio, temperature = 0.3, 4.0
    model = tiny_supmae(ratio=ratio, temperature=temperature)
    x, labels = torch.randn(6, 3, IMG, IMG), torch.tensor([0, 1, 2, 3, 4, 0])
    torch.manual_seed(5)
    losses = model.loss(x, labelled(labels))
    assert {'loss_rec', 'loss_cls', 'accuracy_top-1'} <= set(losses)

    torch.manual_seed(5)
    latent, mask, ids_restore = model.backbone(x)
    logits = model.cls_head(latent)
    ce = -F.log_softmax(logits / temperature, dim=1)[torch.arange(6), labels].mean()
    assert torch.allclose(losses['loss_cls'], ratio * ce, rtol=1e-6, atol=0)

    # MAE's loss: mean squared error of norm-pix targets over the masked patches only
    pred = model.neck(latent, ids_restore)
    target = model.head.patchify(x)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6)**.5
    rec = (((pred - target)**2).mean(-1) * mask).sum() / mask.sum()
    assert torch.allclose(losses['loss_rec'], rec, rtol=1e-6, atol=0)

    total, log_vars = model.parse_losses(losses)
    assert torch.allclose(total, rec + ratio * ce, rtol=1e-6, atol=0)
    assert set(log_vars) == {'loss', 'loss_rec', 'loss_cls', 'accuracy_top-1'}
    acc = (logits.argmax(1) == labels).float().mean() * 100
    assert torch.allclose(losses['accuracy_top-1'], acc)

    total.backward()  # the branch trains the encoder too
    assert model.cls_head.fc[0].weight.grad.abs().sum() > 0
    assert model.backbone.layers[0].attn.qkv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('head', ['linear', 'mlp'])
@pytest.mark.parametrize('pool', ['avg', 'cls'])
def test_head_shapes_and_pooling(head, pool):
    torch.manual_seed(0)
    cls_head = MODELS.build(dict(type='VisibleTokenClsHead', num_classes=7, in_channels=DIM,
                                 head=head, pool=pool, hidden_channels=48))
    cls_head.eval()
    tokens = torch.randn(3, 1 + 5, DIM)
    logits = cls_head(tokens)
    assert logits.shape == (3, 7)
    assert torch.equal(cls_head((tokens, )), logits)  # a backbone's tuple of outputs works too
    if head == 'linear':
        assert isinstance(cls_head.fc, torch.nn.Linear)
    else:
        assert [type(m).__name__ for m in cls_head.fc] == [
            'Linear', 'BatchNorm1d', 'ReLU', 'Linear']
        assert cls_head.fc[0].out_features == 48

    feature = tokens[:, 0] if pool == 'cls' else tokens[:, 1:].mean(1)
    assert torch.allclose(cls_head.pre_logits(tokens), feature)
    if pool == 'cls':  # the cls pool looks at nothing but the cls token
        changed = torch.cat([tokens[:, :1], torch.randn(3, 5, DIM)], dim=1)
        assert torch.equal(cls_head(changed), logits)

    preds = cls_head.predict(tokens)
    assert [int(p.pred_label) for p in preds] == logits.argmax(1).tolist()


def test_avg_pool_with_a_mask_averages_the_visible_tokens_only():
    """Encoders that keep every position (BEiT, MaskFeat) pass their mask."""
    cls_head = MODELS.build(dict(type='VisibleTokenClsHead', num_classes=3, in_channels=DIM,
                                 head='linear'))
    tokens = torch.randn(2, 1 + 6, DIM)
    mask = torch.tensor([[1, 0, 1, 1, 0, 1], [0, 0, 0, 1, 1, 1]])
    pooled = cls_head.pre_logits(tokens, mask)
    assert torch.allclose(pooled[0], tokens[0, [2, 5]].mean(0))
    assert torch.allclose(pooled[1], tokens[1, [1, 2, 3]].mean(0))


def test_optional_norm_after_pooling():
    cls_head = MODELS.build(dict(type='VisibleTokenClsHead', num_classes=3, in_channels=DIM,
                                 head='linear', norm_cfg=dict(type='LN', eps=1e-6)))
    tokens = torch.randn(2, 1 + 4, DIM) * 3 + 1
    expected = F.layer_norm(tokens[:, 1:].mean(1), (DIM, ), eps=1e-6)
    assert torch.allclose(cls_head.pre_logits(tokens), expected, atol=1e-6)


def test_bad_arguments_and_inputs_are_named():
    for bad in (dict(pool='max'), dict(head='conv'), dict(temperature=0.0)):
        with pytest.raises(ValueError, match=str(next(iter(bad.values())))):
            MODELS.build(dict(type='VisibleTokenClsHead', num_classes=3, in_channels=DIM, **bad))
    cls_head = MODELS.build(dict(type='VisibleTokenClsHead', num_classes=3, in_channels=DIM))
    with pytest.raises(ValueError, match=r'expects tokens \(B, T \+ N, 32\)'):
        cls_head(torch.randn(2, DIM))


def test_without_a_given_mask_semmaevit_is_maevit_exactly():
    """The paper configs' SemMAEViT backbone draws MAE's random masks when no mask is given:
    SupMAE's reconstruction loss is stock mmpretrain MAE's, bit for bit."""
    torch.manual_seed(0)
    ours = tiny_supmae()
    cfg = {k: v for k, v in tiny_cfg().items() if k not in ('cls_head', 'cls_loss_ratio')}
    stock = MODELS.build(dict(cfg, type='MAE', backbone=dict(cfg['backbone'], type='MAEViT')))
    assert type(stock.backbone).__name__ == 'MAEViT'
    stock.load_state_dict(ours.state_dict(), strict=False)
    x, y = torch.randn(4, 3, IMG, IMG), labelled([0, 1, 2, 3])
    torch.manual_seed(3)
    mine = ours.loss(x, y)
    torch.manual_seed(3)
    theirs = stock.loss(x, y)
    assert torch.equal(mine['loss_rec'], theirs['loss'])
    torch.manual_seed(4)
    assert not torch.equal(ours.loss(x, y)['loss_rec'], theirs['loss'])  # another draw


def test_a_backbone_that_cannot_take_masks_is_refused():
    with pytest.raises(ValueError, match="MAEViT does not encode on given masks.*SemMAEViT"):
        tiny_supmae(backbone='MAEViT')


@pytest.mark.parametrize('config', [IN1K_CFG, DEMO_CFG])
def test_weight_decay_is_the_official_rule(config):
    """SupMAE's rule (timm ``add_weight_decay``): a trained tensor decays unless it is 1-D or a
    bias; so cls_token and mask_token decay and the branch's BatchNorm weight does not."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(f'{ROOT}/{config}')
    model = MODELS.build(cfg.model)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay_of = {id(p): group['weight_decay'] for group in optimizer.param_groups
                for p in group['params']}
    trained = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert set(decay_of) == {id(p) for p in trained.values()}  # frozen pos embeds left out
    official = {name for name, p in trained.items() if p.ndim > 1 and not name.endswith('.bias')}
    assert {'backbone.cls_token', 'neck.mask_token'} <= official
    assert 'cls_head.fc.1.weight' not in official  # BatchNorm1d
    assert {name for name, p in trained.items() if decay_of[id(p)] > 0} == official
    assert {decay_of[id(trained[name])] for name in official} == {0.05}


def test_unlabelled_batch_names_the_fix():
    model = tiny_supmae()
    x = torch.randn(2, 3, IMG, IMG)
    with pytest.raises(ValueError, match='needs a class label.*with_label=True'):
        model.loss(x, [DataSample(), DataSample()])
    with pytest.raises(ValueError, match='with_label=True'):
        model.loss(x, [DataSample().set_gt_label(1), DataSample()])


def test_paper_recipe_config():
    cfg = Config.fromfile(f'{ROOT}/{IN1K_CFG}')
    model = cfg.model
    assert model.type == 'SupMAE' and model.cls_loss_ratio == 0.01
    assert model.backbone.type == 'SemMAEViT'  # MAEViT's parameters, takes a given mask
    assert model.neck.decoder_depth == 1 and model.neck.decoder_embed_dim == 512
    assert model.head.norm_pix and model.backbone.mask_ratio == 0.75
    assert (model.cls_head.pool, model.cls_head.head, model.cls_head.hidden_channels,
            model.cls_head.temperature) == ('avg', 'mlp', 3072, 10.0)
    assert cfg.train_dataloader.batch_size * 8 == 4096
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.5e-4 * 4096 / 256)
    dataset = cfg.train_dataloader.dataset
    assert (dataset.type, dataset.data_prefix, dataset.with_label) == (
        'CustomDataset', 'train', True)
    warmup, cosine = cfg.param_scheduler
    assert (warmup.end, cosine.begin, cosine.end, cfg.train_cfg.max_epochs) == (20, 20, 400, 400)
    ft = Config.fromfile(f'{ROOT}/{FT_CFG}')
    assert ft.optim_wrapper.optimizer.lr == pytest.approx(1e-3 * 1024 / 256)
    assert ft.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65
    assert ft.model.backbone.type == 'VisionTransformer'  # stock backbone downstream


@pytest.mark.parametrize('downstream', [FT_CFG, LP_CFG])
def test_in1k_checkpoint_loads_into_the_stock_downstream_backbones(downstream):
    pretrain = Config.fromfile(f'{ROOT}/{IN1K_CFG}').model
    backbone_cfg = Config.fromfile(f'{ROOT}/{downstream}').model.backbone
    assert backbone_cfg.init_cfg == dict(type='Pretrained', checkpoint='', prefix='backbone.')
    state = {k[len('backbone.'):]: v for k, v in MODELS.build(pretrain).state_dict().items()
             if k.startswith('backbone.')}
    backbone_cfg.init_cfg = None
    missing, unexpected = MODELS.build(backbone_cfg).load_state_dict(state, strict=False)
    if backbone_cfg.out_type == 'avg_featmap':  # fine-tune: the new norm after the global pool
        assert sorted(missing) == ['ln2.bias', 'ln2.weight']
        assert sorted(unexpected) == ['ln1.bias', 'ln1.weight']
    else:
        assert missing == [] and unexpected == []


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_demo_config_trains_and_its_checkpoint_feeds_a_stock_vit(tmp_path, tiny_data):
    work = tmp_path / 'supmae'
    # 20 labelled train images, batch 10, drop_last: exactly 2 iterations
    result = subprocess.run(
        [sys.executable, 'tools/train.py', DEMO_CFG, '--work-dir', str(work), '--cfg-options',
         f'train_dataloader.dataset.data_root={tiny_data}', 'train_dataloader.batch_size=10',
         'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1'],
        cwd=ROOT, env=run_env(), capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert 'Epoch(train) [1][2/2]' in log
    line = next(ln for ln in log.splitlines() if 'Epoch(train) [1][2/2]' in ln)
    assert 'loss_rec:' in line and 'loss_cls:' in line and 'accuracy_top-1:' in line

    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)
    state = {k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items()
             if k.startswith('backbone.')}
    assert any(k.startswith('cls_head.') for k in ckpt['state_dict'])
    cfg = Config.fromfile(f'{ROOT}/{DEMO_CFG}')
    vit = MODELS.build(dict(type='VisionTransformer', arch=cfg.model.backbone.arch, img_size=28,
                            patch_size=4, out_type='raw', final_norm=True))
    vit.load_state_dict(state, strict=True)  # every encoder key, nothing left over

    supmae = MODELS.build(cfg.model)
    supmae.load_state_dict(ckpt['state_dict'])
    x = torch.randn(2, 3, 28, 28)
    vit.eval(), supmae.eval()
    with torch.no_grad():
        assert torch.allclose(vit(x)[-1], supmae.extract_feat(x)[-1], atol=1e-6)
