"""DINO / iBOT checkpoints -> mmpretrain names, through ``official_to_mmpretrain.py``.

Synthetic files in each official layout (tiny timm ViTs with random weights, heads named as
DINOHead / iBOTHead name theirs) must give a ``backbone.*`` checkpoint whose tensors are the
picked network's own, that loads strictly into a stock ``VisionTransformer`` and into the part
learner's frozen ViT and reproduces the reference ViT's tokens; the heads and iBOT's mask token
are left out and listed; a file of no known layout stops with one error.
"""
import argparse
import runpy
import subprocess
import sys
from typing import Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS
from test_convert import DIM, IMG, PATCH, RefMAE, arch, build
from torch import Tensor

import mim_plugins  # noqa: F401  (registers SemMAEPartLearner)
from conftest import ROOT, run_env
from mim_plugins.utils.convert import CheckpointLayoutError, convert_official_vit, map_key
from mim_plugins.utils.convert_dino import Network, pick_network, strip_wrappers

TOOL = 'tools/model_converters/official_to_mmpretrain.py'
ENCODER = ('cls_token', 'pos_embed', 'patch_embed.', 'blocks.', 'norm.')
PART_CONFIG = 'configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py'


def reference(seed: int) -> RefMAE:
    """A timm-layout ViT with random weights (its encoder is what DINO / iBOT train)."""
    torch.manual_seed(seed)
    return RefMAE().eval()


def encoder(ref: RefMAE) -> Dict[str, Tensor]:
    """The ViT's names as DINO's and iBOT's ``vision_transformer.py`` have them."""
    return {k: v for k, v in ref.state_dict().items() if k.startswith(ENCODER)}


def head(dim: int, ibot: bool) -> Dict[str, Tensor]:
    """A projection head's names: DINOHead's 3-layer ``mlp`` (Linear, GELU, ...) and weight-normed
    ``last_layer``; iBOTHead adds ``last_layer2`` for the patch tokens."""
    shapes = {'mlp.0.weight': (24, dim), 'mlp.0.bias': (24,), 'mlp.2.weight': (24, 24),
              'mlp.2.bias': (24,), 'mlp.4.weight': (8, 24), 'mlp.4.bias': (8,),
              'last_layer.weight_g': (40, 1), 'last_layer.weight_v': (40, 8)}
    if ibot:
        shapes.update({'last_layer2.weight_g': (56, 1), 'last_layer2.weight_v': (56, 8)})
    return {f'head.{k}': torch.randn(shape) for k, shape in shapes.items()}


def wrapped(vit: Dict[str, Tensor], dim: int, ibot: bool, ddp: bool,
            mask_token: bool = False) -> Dict[str, Tensor]:
    """``MultiCropWrapper(vit, head).state_dict()``, inside DistributedDataParallel if ``ddp``."""
    prefix = 'module.' if ddp else ''
    state = {f'{prefix}backbone.{k}': v for k, v in vit.items()}
    if mask_token:  # iBOT's student is built with masked_im_modeling=True
        state[f'{prefix}backbone.masked_embed'] = torch.randn(1, dim)
    state.update({prefix + k: v for k, v in head(dim, ibot).items()})
    return state


def training_checkpoint(teacher: Dict[str, Tensor], student: Dict[str, Tensor], ibot: bool,
                        dim: int = DIM) -> dict:
    """What main_dino.py / main_ibot.py save: the student in DDP (``module.``), the teacher not
    (its heads have no batch norm), the optimizer, the epoch, the argparse namespace, the loss's
    centres."""
    return {'teacher': wrapped(teacher, dim, ibot, ddp=False),
            'student': wrapped(student, dim, ibot, ddp=True, mask_token=ibot),
            'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1, 'params': [0, 1]}]},
            'epoch': 100, 'args': argparse.Namespace(arch='vit_small', patch_size=16),
            'ibot_loss' if ibot else 'dino_loss': {'center': torch.zeros(1, 40)}}


def run_tool(*argv) -> None:
    runpy.run_path(TOOL)['main']([str(a) for a in argv])


def tokens_of(checkpoint: str, x: Tensor) -> Tensor:
    """All tokens (B, 1 + N, DIM) of a stock ViT loaded as our configs load one."""
    vit = build(dict(type='VisionTransformer', arch=arch(), img_size=IMG, patch_size=PATCH,
                     out_type='raw', init_cfg=dict(type='Pretrained', checkpoint=checkpoint,
                                                   prefix='backbone.')))
    vit.init_weights()
    with torch.no_grad():
        return vit(x)[-1]


def want_tokens(ref: RefMAE, x: Tensor) -> Tensor:
    with torch.no_grad():
        return ref.norm(ref.tokens(x))


def load_strictly(path: str) -> dict:
    """DST's backbone loads into a fresh stock ViT with no missing or unexpected name."""
    saved = torch.load(path, weights_only=True)
    assert all(k.startswith('backbone.') for k in saved['state_dict'])
    vit = build(dict(type='VisionTransformer', arch=arch(), img_size=IMG, patch_size=PATCH))
    vit.load_state_dict({k[len('backbone.'):]: v for k, v in saved['state_dict'].items()},
                        strict=True)
    return saved


def test_dino_backbone_file_is_copied_tensor_for_tensor(tmp_path, capsys):
    """dino_vitbase16_pretrain.pth's layout: a flat name -> tensor dict of the ViT alone."""
    ref = reference(0)
    src, dst = tmp_path / 'dino_pretrain.pth', tmp_path / 'dino_mmpretrain.pth'
    torch.save(encoder(ref), src)
    run_tool(src, dst)
    out = capsys.readouterr().out
    assert 'WARNING' not in out and 'Left out' not in out and 'training checkpoint' not in out
    saved = load_strictly(dst)
    assert len(saved['state_dict']) == len(encoder(ref))
    for name, value in encoder(ref).items():
        assert torch.equal(saved['state_dict'][map_key(name)], value), name
    assert saved['meta']['dropped_keys'] == [] and 'network' not in saved['meta']
    x = torch.randn(2, 3, IMG, IMG)
    got = tokens_of(str(dst), x)
    assert torch.allclose(got, want_tokens(ref, x), atol=1e-5)
    # one source weight changed -> the loaded ViT's output changes (one entry: a shift of every
    # channel alike would vanish in the final LayerNorm)
    changed = encoder(ref)
    changed['blocks.1.mlp.fc2.weight'] = changed['blocks.1.mlp.fc2.weight'].clone()
    changed['blocks.1.mlp.fc2.weight'][3, 5] += 1.0
    torch.save(changed, src)
    run_tool(src, dst)
    assert not torch.allclose(tokens_of(str(dst), x), got, atol=1e-3)


@pytest.mark.parametrize('ibot', [False, True], ids=['dino', 'ibot'])
def test_training_checkpoint_gives_the_teacher_or_the_student_without_heads(tmp_path, capsys,
                                                                             ibot):
    teacher, student = reference(1), reference(2)
    checkpoint = training_checkpoint(encoder(teacher), encoder(student), ibot)
    src = tmp_path / 'checkpoint.pth'
    torch.save(checkpoint, src)
    x = torch.randn(2, 3, IMG, IMG)

    run_tool(src, tmp_path / 'teacher.pth')
    out = capsys.readouterr().out
    assert 'converting its teacher network (--network student' in out and 'WARNING' not in out
    saved = load_strictly(tmp_path / 'teacher.pth')
    teacher_heads = sorted(k for k in checkpoint['teacher'] if k.startswith('head.'))
    assert saved['meta']['dropped_keys'] == teacher_heads
    assert saved['meta']['network'] == 'teacher' and saved['meta']['epoch'] == 100
    assert f'Left out {len(teacher_heads)} pretraining-only tensors' in out
    assert all(k in out for k in teacher_heads)
    got_teacher = tokens_of(str(tmp_path / 'teacher.pth'), x)
    assert torch.allclose(got_teacher, want_tokens(teacher, x), atol=1e-5)

    run_tool(src, tmp_path / 'student.pth', '--network', 'student')
    out = capsys.readouterr().out
    assert 'converting its student network' in out
    saved = load_strictly(tmp_path / 'student.pth')
    student_dropped = sorted(k for k in checkpoint['student'] if k.startswith('module.head.'))
    if ibot:
        student_dropped = sorted(student_dropped + ['module.backbone.masked_embed'])
    assert saved['meta']['dropped_keys'] == student_dropped
    assert saved['meta']['network'] == 'student' and saved['meta']['unknown_keys'] == []
    for name, value in encoder(student).items():
        assert torch.equal(saved['state_dict'][map_key(name)], value), name
    got_student = tokens_of(str(tmp_path / 'student.pth'), x)
    assert torch.allclose(got_student, want_tokens(student, x), atol=1e-5)
    assert not torch.allclose(got_student, got_teacher, atol=1e-3)


def test_every_single_network_layout_gives_the_same_backbone():
    """The backbone files (DINO's flat dict, iBOT's ``state_dict`` with the student's mask token),
    iBOT's ``extract_backbone_weights.py --with_head true``, a DDP-wrapped teacher and a
    MultiCropWrapper state dict all reduce to the ViT's timm names."""
    vit = encoder(reference(3))
    extracted = dict(vit, **head(DIM, ibot=True))
    layouts = {
        'dino backbone': (vit, []),
        'ibot student backbone': ({'state_dict': dict(vit, masked_embed=torch.randn(1, DIM))},
                                  ['masked_embed']),
        'ibot --with_head': ({'state_dict': extracted}, sorted(head(DIM, True))),
        'ddp teacher': ({'teacher': wrapped(vit, DIM, False, ddp=True)},
                        sorted(f'module.{k}' for k in head(DIM, False))),
        'wrapper state dict': ({'state_dict': wrapped(vit, DIM, True, ddp=True)},
                               sorted(f'module.{k}' for k in head(DIM, True))),
    }
    for layout, (checkpoint, dropped) in layouts.items():
        backbone = strip_wrappers(pick_network(checkpoint))
        assert backbone.dropped == dropped, layout
        assert backbone.state_dict.keys() == vit.keys(), layout
        assert all(backbone.state_dict[k] is vit[k] for k in vit), layout
        assert convert_official_vit(backbone.state_dict).unknown == [], layout


def test_mae_files_pass_through_unchanged():
    """A fine-tuned MAE file's classifier (``head.weight``) is not a projection head."""
    state = {k: v for k, v in reference(4).state_dict().items()
             if not k.startswith(('decoder', 'mask_token'))}
    backbone = strip_wrappers(Network(state, None))
    assert backbone.dropped == [] and not backbone.wrapped
    assert backbone.state_dict == state


@pytest.mark.parametrize('name, dims, heads, hidden', [('b', 768, 12, 3072),
                                                      ('deit-small', 384, 6, 1536)])
def test_released_sizes_load_strictly_into_stock_vits(name, dims, heads, hidden):
    """ViT-B/16 and ViT-S/16 (DINO and iBOT release both) at 224 px, on the meta device (names
    and shapes only). mmpretrain's arch 's' is the original ViT paper's 768-wide ViT-S, not
    DINO's: the converted ViT-S/16 fits 'deit-small' and is refused by 's'."""
    with torch.device('meta'):
        teacher = RefMAE(dim=dims, depth=12, heads=heads, hidden=hidden, patch=16, img=224)
        student = RefMAE(dim=dims, depth=12, heads=heads, hidden=hidden, patch=16, img=224)
        checkpoint = training_checkpoint(encoder(teacher), encoder(student), True, dims)
        for network in ('teacher', 'student'):
            backbone = strip_wrappers(pick_network(checkpoint, network))
            converted = convert_official_vit(backbone.state_dict)
            assert converted.unknown == []
            state = {k[len('backbone.'):]: v for k, v in converted.state_dict.items()}
            vit = VisionTransformer(arch=name, img_size=224, patch_size=16, out_type='raw')
            vit.load_state_dict(state, strict=True)
        if name == 'deit-small':
            with pytest.raises(RuntimeError, match='size mismatch'):
                VisionTransformer(arch='s', img_size=224, patch_size=16).load_state_dict(state)


def test_part_learner_freezes_the_converted_teacher(tmp_path):
    """The shipped part-learner config, its ViT set to the checkpoint's size, loads the converted
    teacher through its ``init_cfg`` (prefix ``backbone.``) and sees the teacher's tokens."""
    teacher = reference(5)
    src, dst = tmp_path / 'checkpoint.pth', tmp_path / 'ibot_teacher.pth'
    torch.save(training_checkpoint(encoder(teacher), encoder(reference(6)), True), src)
    run_tool(src, dst)
    cfg = Config.fromfile(f'{ROOT}/{PART_CONFIG}').model
    cfg.backbone.update(arch=arch(), img_size=IMG, patch_size=PATCH)
    cfg.backbone.init_cfg.checkpoint = str(dst)
    init_default_scope('mmpretrain')
    learner = MODELS.build(cfg)
    learner.init_weights()
    x = torch.randn(2, 3, IMG, IMG)
    cls_token, patches = learner.tokens(x)
    want = want_tokens(teacher, x)
    assert torch.allclose(cls_token, want[:, 0], atol=1e-5)
    assert torch.allclose(patches, want[:, 1:], atol=1e-5)


@pytest.mark.parametrize('checkpoint, network, message', [
    ({'teacher': {'backbone.conv1.weight': torch.zeros(1), 'head.mlp.0.weight': torch.zeros(1)},
      'student': {}}, None, 'The teacher network of this DINO / iBOT training checkpoint is not '
     "a ViT in the timm layout: \\['patch_embed.proj.weight'"),
    ({'state_dict': {'module.backbone.patch_embed.proj.0.0.weight': torch.zeros(1)}}, None,
     'This DINO / iBOT \\(module. / backbone.\\) state dict is not a ViT'),
    ({'cls_token': torch.zeros(1)}, 'student', 'holds one network only. Fix: leave --network'),
    ({'teacher': {'backbone.cls_token': torch.zeros(1)}}, 'student',
     "has no 'student' network \\(it holds \\['teacher'\\]\\). Fix: pass --network teacher"),
    ({'epoch': 3, 'args': 'x'}, None, "No parameters found .* 'teacher' / 'student'"),
])
def test_unknown_layouts_are_refused_with_the_fix(checkpoint, network, message):
    with pytest.raises(CheckpointLayoutError, match=message) as info:
        strip_wrappers(pick_network(checkpoint, network))
    assert 'Fix:' in str(info.value)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_the_tool_stops_with_one_line(tmp_path):
    src, dst = tmp_path / 'resnet_dino.pth', tmp_path / 'out.pth'
    torch.save({'teacher': {'backbone.conv1.weight': torch.zeros(1)}, 'epoch': 1}, src)
    out = subprocess.run([sys.executable, TOOL, str(src), str(dst)], cwd=ROOT, env=run_env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith('ERROR: The teacher network of this DINO / iBOT training')
    assert 'Fix:' in out.stderr and 'Traceback' not in out.stderr and not dst.exists()
