"""The official-checkpoint converter: a checkpoint written in the official (timm) key layout by an
independent reference ViT gives identical features in the stock mmpretrain modules."""
import argparse
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from torch import nn

from conftest import ROOT, run_env
from mim_plugins.utils.convert import (CheckpointLayoutError, convert_official_vit, map_key,
                                       unwrap_state_dict)

DIM, DEPTH, HEADS, HIDDEN, PATCH, IMG = 32, 2, 4, 64, 8, 32
DEC_DIM, DEC_DEPTH, DEC_HEADS = 16, 2, 2
TOOL = 'tools/model_converters/official_to_mmpretrain.py'


class RefBlock(nn.Module):
    """Pre-norm transformer block with the official names: norm1, attn.qkv, attn.proj, norm2,
    mlp.fc1, mlp.fc2."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.attn.qkv(self.norm1(x)).view(B, N, 3, self.heads, C // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, C / heads)
        weights = (q @ k.transpose(-2, -1) * (C // self.heads)**-0.5).softmax(dim=-1)
        x = x + self.attn.proj((weights @ v).transpose(1, 2).reshape(B, N, C))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class RefMAE(nn.Module):
    """A tiny ViT + MAE decoder + fine-tune head in the official layout (our own, for the test)."""

    def __init__(self, dim: int = DIM, depth: int = DEPTH, heads: int = HEADS,
                 hidden: int = HIDDEN, patch: int = PATCH, img: int = IMG,
                 classes: int = 7) -> None:
        super().__init__()
        num_patches = (img // patch)**2
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim))
        self.blocks = nn.ModuleList(RefBlock(dim, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.decoder_embed = nn.Linear(dim, DEC_DIM)
        self.mask_token = nn.Parameter(torch.randn(1, 1, DEC_DIM))
        self.decoder_pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, DEC_DIM))
        self.decoder_blocks = nn.ModuleList(
            RefBlock(DEC_DIM, DEC_HEADS, 4 * DEC_DIM) for _ in range(DEC_DEPTH))
        self.decoder_norm = nn.LayerNorm(DEC_DIM, eps=1e-6)
        self.decoder_pred = nn.Linear(DEC_DIM, PATCH * PATCH * 3)
        with torch.no_grad():  # no parameter at a default value: a swapped name must show
            for p in self.parameters():
                p.add_(torch.randn_like(p) * 0.1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the blocks, (B, 1 + N, DIM), before any final norm."""
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """The MAE decoder on (B, 1 + N_vis, DIM) -> pixels (B, N, PATCH * PATCH * 3)."""
        x = self.decoder_embed(latent)
        B, L = ids_restore.shape
        patches = torch.cat([x[:, 1:], self.mask_token.expand(B, L + 1 - x.shape[1], -1)], 1)
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, DEC_DIM))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


def arch() -> dict:
    return dict(embed_dims=DIM, num_layers=DEPTH, num_heads=HEADS, feedforward_channels=HIDDEN)


def build(cfg: dict) -> nn.Module:
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg)
    model.eval()  # mmpretrain's VisionTransformer.train() returns None: no chaining
    return model


def official_file(tmp_path, names=None) -> tuple:
    """A reference model saved as the official training code does: {'model', 'epoch', 'args'}
    (an argparse.Namespace, which the converter must read without unpickling arbitrary code)."""
    torch.manual_seed(0)
    ref = RefMAE().eval()
    state = {k: v for k, v in ref.state_dict().items() if names is None or names(k)}
    path = tmp_path / 'official.pth'
    torch.save(dict(model=state, epoch=799, args=argparse.Namespace(norm_pix_loss=True)), path)
    return ref, path


def convert(src, dst) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, str(src), str(dst)], cwd=ROOT, env=run_env(),
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_encoder_gives_identical_features_through_pretrained_init(tmp_path):
    """mae_pretrain_vit_*.pth layout (encoder + final norm) -> a stock VisionTransformer loaded
    the way our downstream configs do it (init_cfg Pretrained, prefix 'backbone.')."""
    encoder = ('cls_token', 'pos_embed', 'patch_embed', 'blocks', 'norm.')
    ref, src = official_file(tmp_path, names=lambda k: k.startswith(encoder))
    dst = tmp_path / 'mmpretrain.pth'
    out = convert(src, dst)
    assert out.returncode == 0, out.stderr
    assert 'WARNING' not in out.stdout
    vit = build(dict(type='VisionTransformer', arch=arch(), img_size=IMG, patch_size=PATCH,
                     out_type='raw', final_norm=True,
                     init_cfg=dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.')))
    vit.init_weights()
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        want = ref.norm(ref.tokens(x))
        got = vit(x)[-1]
    assert got.shape == want.shape == (2, 1 + (IMG // PATCH)**2, DIM)
    assert torch.allclose(got, want, atol=1e-5)
    saved = torch.load(dst, weights_only=False)
    assert saved['meta']['source'] == 'official.pth' and saved['meta']['epoch'] == 799


def test_finetuned_global_pool_classifier_is_identical(tmp_path):
    """MAE fine-tuned layout (fc_norm, head, no final norm) -> stock ImageClassifier with the
    global-pool VisionTransformer and LinearClsHead of configs/mae/benchmarks: strict load."""
    ref, _ = official_file(tmp_path)
    official = {k: v for k, v in ref.state_dict().items()
                if not k.startswith(('norm.', 'decoder', 'mask_token'))}
    result = convert_official_vit(official)
    assert result.unknown == []
    model = build(dict(
        type='ImageClassifier',
        backbone=dict(type='VisionTransformer', arch=arch(), img_size=IMG, patch_size=PATCH,
                      out_type='avg_featmap', final_norm=False),
        head=dict(type='LinearClsHead', num_classes=7, in_channels=DIM)))
    model.load_state_dict(result.state_dict, strict=True)
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        want = ref.head(ref.fc_norm(ref.tokens(x)[:, 1:].mean(dim=1)))
        got = model(x, mode='tensor')
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_converted_finetuned_file_evaluates_with_tools_test(tmp_path, tiny_data):
    """A fine-tuned official file of the demo ViT's shape, converted, runs through tools/test.py
    with the demo fine-tune config, every parameter found."""
    torch.manual_seed(0)
    ref = RefMAE(dim=192, depth=6, heads=3, hidden=768, patch=4, img=28, classes=10)
    official = {k: v for k, v in ref.state_dict().items()
                if not k.startswith(('norm.', 'decoder', 'mask_token'))}
    torch.save(dict(model=official), tmp_path / 'finetuned.pth')
    dst = tmp_path / 'finetuned_mmpretrain.pth'
    assert convert(tmp_path / 'finetuned.pth', dst).returncode == 0
    options = [f'test_dataloader.{o}' for o in (f'dataset.data_root={tiny_data}', 'num_workers=0',
                                                 'persistent_workers=False')]
    out = subprocess.run(
        [sys.executable, 'tools/test.py', 'configs/mae/benchmarks/'
         'vit-tiny-p4_1xb64-coslr-10e_mnist5k-500.py', str(dst), '--work-dir', str(tmp_path),
         '--cfg-options', *options], cwd=ROOT, env=run_env(), capture_output=True, text=True,
        timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'accuracy/top1' in log
    assert 'missing keys' not in log and 'unexpected key' not in log


def test_decoder_maps_onto_mae_pretrain_decoder(tmp_path):
    """Full pretraining checkpoint: decoder names load strictly into MAEPretrainDecoder and it
    reconstructs the same pixels as the reference decoder from the same latent and mask order."""
    ref, _ = official_file(tmp_path)
    result = convert_official_vit(ref.state_dict())
    neck = {k[len('neck.'):]: v for k, v in result.state_dict.items() if k.startswith('neck.')}
    decoder = build(dict(type='MAEPretrainDecoder', num_patches=(IMG // PATCH)**2,
                         patch_size=PATCH, embed_dim=DIM, decoder_embed_dim=DEC_DIM,
                         decoder_depth=DEC_DEPTH, decoder_num_heads=DEC_HEADS))
    missing, unexpected = decoder.load_state_dict(neck, strict=True)
    assert not missing and not unexpected
    L = (IMG // PATCH)**2
    latent = torch.randn(2, 1 + L // 4, DIM)
    ids_restore = torch.stack([torch.randperm(L) for _ in range(2)])
    with torch.no_grad():
        assert torch.allclose(decoder(latent, ids_restore), ref.decode(latent, ids_restore),
                              atol=1e-5)


def test_supmae_branch_maps_onto_visible_token_cls_head():
    """SupMAE's cls_head (Linear, BN, ReLU, Linear / a bare Linear) -> our head's `fc`."""
    from mim_plugins.models.heads.visible_cls_head import VisibleTokenClsHead
    for kind, official in (
            ('mlp', nn.Sequential(nn.Linear(DIM, 24), nn.BatchNorm1d(24), nn.ReLU(),
                                  nn.Linear(24, 5))),
            ('linear', nn.Linear(DIM, 5))):
        official.eval()
        state = {f'cls_head.{k}': v for k, v in official.state_dict().items()}
        state['patch_embed.proj.weight'] = torch.zeros(DIM, 3, PATCH, PATCH)
        state['blocks.0.attn.qkv.weight'] = torch.zeros(3 * DIM, DIM)
        converted = convert_official_vit(state).state_dict
        head = VisibleTokenClsHead(num_classes=5, in_channels=DIM, head=kind,
                                   hidden_channels=24).eval()
        branch = {k[len('cls_head.'):]: v for k, v in converted.items()
                  if k.startswith('cls_head.')}
        head.load_state_dict(branch, strict=True)
        tokens = torch.randn(3, 5, DIM)
        with torch.no_grad():  # SupMAE pools the patch tokens (global pool), cls token first
            assert torch.allclose(head(tokens), official(tokens[:, 1:].mean(dim=1)), atol=1e-6)


def test_linear_probe_head_maps_onto_bn_neck_and_vit_head():
    """The official linear probe's Sequential(BatchNorm1d(affine=False), Linear)."""
    assert map_key('head.0.running_mean') == 'neck.bn.running_mean'
    assert map_key('head.1.weight') == 'head.layers.head.weight'
    assert map_key('head.weight') == 'head.fc.weight'


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_unknown_keys_are_reported_and_kept_out(tmp_path):
    ref, src = official_file(tmp_path)
    state = torch.load(src, weights_only=False)
    state['model']['dist_token'] = torch.zeros(1, 1, DIM)
    state['model']['blocks.0.attn.q_bias'] = torch.zeros(DIM)
    torch.save(state, src)
    dst = tmp_path / 'out.pth'
    out = convert(src, dst)
    assert out.returncode == 0, out.stderr
    assert 'WARNING: 2 tensors' in out.stdout
    assert 'dist_token' in out.stdout and 'blocks.0.attn.q_bias' in out.stdout
    saved = torch.load(dst, weights_only=False)
    assert saved['meta']['unknown_keys'] == ['blocks.0.attn.q_bias', 'dist_token']
    assert len(saved['state_dict']) == len(ref.state_dict())  # everything else converted
    assert all(k.split('.')[0] in ('backbone', 'neck', 'head') for k in saved['state_dict'])


def test_wrappers_are_unwrapped():
    weights = {'cls_token': torch.zeros(1)}
    assert unwrap_state_dict({'model': weights, 'epoch': 3}) == weights
    assert unwrap_state_dict({'state_dict': weights, 'meta': {}}) == weights
    assert unwrap_state_dict(weights) == weights
    with pytest.raises(CheckpointLayoutError, match='No parameters found'):
        unwrap_state_dict({'epoch': 3, 'args': 'x'})


@pytest.mark.parametrize('state, message', [
    ({'conv1.weight': torch.zeros(1), 'fc.weight': torch.zeros(1)},
     "Not an official MAE/SupMAE/SemMAE/DINO/iBOT ViT checkpoint: \\['patch_embed.proj.weight'"),
    ({'backbone.cls_token': torch.zeros(1)}, 'already has mmpretrain names'),
])
@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_wrong_layout_is_one_clear_error(tmp_path, state, message):
    with pytest.raises(CheckpointLayoutError, match=message):
        convert_official_vit(state)
    src = tmp_path / 'wrong.pth'
    torch.save(dict(model=state), src)
    out = convert(src, tmp_path / 'out.pth')
    assert out.returncode == 2
    assert out.stderr.startswith('ERROR: ') and 'Fix:' in out.stderr
    assert 'Traceback' not in out.stderr and not (tmp_path / 'out.pth').exists()


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_unreadable_or_missing_file_is_one_clear_error(tmp_path):
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(b'not a checkpoint')
    for src, message in ((bad, 'cannot be read as a PyTorch checkpoint'),
                         (tmp_path / 'nope.pth', 'does not exist')):
        out = convert(src, tmp_path / 'out.pth')
        assert out.returncode == 2 and message in out.stderr and 'Traceback' not in out.stderr
