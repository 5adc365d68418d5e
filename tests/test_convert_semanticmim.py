"""Checkpoints of the official SemanticMIM code -> ours, through the converter tool.

The official state dicts of the golden fixtures, saved as the official training writes them
(mmengine's layout: ``backbone.``/``neck.``/``head.`` prefixes) or as a bare backbone, go through
``tools/model_converters/official_to_mmpretrain.py``; the result must reproduce the official
outputs in our pretraining backbone, and load into the stock downstream ViTs.
"""
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import run_env
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import mim_plugins  # noqa: F401
from mim_plugins.fidelity.semanticmim import build_model

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = osp.join(ROOT, 'tests', 'fixtures', 'official')
TOOL = osp.join(ROOT, 'tools', 'model_converters', 'official_to_mmpretrain.py')


def convert(tmp_path, checkpoint: dict) -> dict:
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save(checkpoint, src)
    done = subprocess.run([sys.executable, TOOL, str(src), str(dst)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env=run_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'SemanticMIM' in done.stdout
    return torch.load(dst, weights_only=True)


def official_training_checkpoint(fx: dict) -> dict:
    """The fixture's backbone inside a full checkpoint as the official training saves it."""
    state = {f'backbone.{k}': v for k, v in fx['state_dict'].items()}
    state['neck.fc.weight'] = torch.randn(108, 48)  # a LinearNeck, stock mmpretrain names
    return {'meta': {'epoch': 300}, 'state_dict': state}


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
@pytest.mark.parametrize('name', ['semanticmim_maskfeat_bottleneck_8cls.pt',
                                  'semanticmim_beit_bottleneck.pt'])
@pytest.mark.parametrize('layout', ['training', 'bare'])
def test_converted_checkpoint_reproduces_the_official_outputs(tmp_path, name, layout):
    fx = torch.load(osp.join(FIXTURES, name), weights_only=True)
    raw = official_training_checkpoint(fx) if layout == 'training' else fx['state_dict']
    ours = convert(tmp_path, raw)['state_dict']
    assert all(k.startswith(('backbone.', 'neck.')) for k in ours)
    if layout == 'training':
        assert torch.equal(ours['neck.fc.weight'], raw['state_dict']['neck.fc.weight'])
    model = build_model(fx, name)
    model.load_state_dict({k[len('backbone.'):]: v for k, v in ours.items()
                           if k.startswith('backbone.')}, strict=True)
    inputs = fx['inputs']
    with torch.no_grad():
        _, pred = model.forward_streams(inputs['images'], inputs['mask_index'],
                                        ~inputs['img_index'])
    assert (pred - fx['outputs']['pred_tokens']).abs().max() <= fx['atol']


def downstream(cfg: dict, checkpoint: str) -> torch.nn.Module:
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=checkpoint,
                                                 prefix='backbone.')))
    model.init_weights()
    model.eval()
    return model


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
@pytest.mark.parametrize('name', ['semanticmim_maskfeat_bottleneck_8cls.pt',
                                  'semanticmim_beit_bottleneck.pt',
                                  'semanticmim_maskfeat_baseline.pt'])
def test_converted_checkpoint_runs_in_the_downstream_vits(tmp_path, name):
    """Downstream, the official ViT runs on every patch with all its cls tokens: that is our main
    stream with nothing hidden, which the parity check ties to the official one. The stock ViT
    (1 cls token) and ``MultiClsTokenViT`` (all N) must give exactly that."""
    fx = torch.load(osp.join(FIXTURES, name), weights_only=True)
    convert(tmp_path, official_training_checkpoint(fx))
    ckpt = str(tmp_path / 'ours.pth')
    kwargs = fx['official_kwargs']
    n = kwargs.get('num_cls_tokens', 1)
    common = dict(arch=kwargs['arch'], img_size=kwargs['img_size'],
                  patch_size=kwargs['patch_size'], out_type='raw')
    if fx['method'] == 'semanticmim_beit':
        common.update(type='BEiTViT', use_abs_pos_emb=True, use_rel_pos_bias=False,
                      use_shared_rel_pos_bias=False, layer_scale_init_value=0.1,
                      final_norm=True)  # BEiTViT's default is False (a pooled norm instead)
    else:
        common.update(type='MultiClsTokenViT' if n > 1 else 'VisionTransformer',
                      **(dict(num_cls_tokens=n) if n > 1 else {}))
    model = downstream(common, ckpt)
    x = fx['inputs']['images']
    length = x.shape[-1] // kwargs['patch_size'] * (x.shape[-2] // kwargs['patch_size'])
    nothing = torch.zeros(len(x), length, dtype=torch.bool)
    reference_fx = dict(fx, official_kwargs=dict(kwargs, use_bottleneck=True))
    reference = build_model(reference_fx, name)
    state = torch.load(ckpt, weights_only=True)['state_dict']
    reference.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                               if k.startswith('backbone.')}, strict=False)
    with torch.no_grad():
        main, _ = reference.forward_streams(x, nothing, nothing)
        out = model(x)[-1]
    expected = torch.cat([main[:, :1], main[:, n:]], 1)  # the stock output skips extra cls rows
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_not_a_semanticmim_checkpoint_is_named(tmp_path):
    src = tmp_path / 'weird.pth'
    torch.save({'state_dict': {'backbone.foo.weight': torch.zeros(1)}}, src)
    done = subprocess.run([sys.executable, TOOL, str(src), str(tmp_path / 'out.pth')],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2 and 'Fix:' in done.stderr
    assert not (tmp_path / 'out.pth').exists()
