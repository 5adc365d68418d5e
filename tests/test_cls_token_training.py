"""The N cls tokens train as the official SemanticMIM parameters do.

The official code keeps ``cls_token (1, N, C)`` and a position row per token; ours splits them
into ``cls_token`` + ``extra_cls_tokens`` and ``pos_embed`` + ``extra_cls_pos_embed``. The
forward pass cannot tell a token and its row from their sum; AdamW, weight decay and gradient
clipping can. The golden fixture holds five official AdamW steps (MaskFeat recipe, max norm
0.02) of the 8-cls-token MaskFeat bottleneck.
"""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch import nn

import mim_plugins  # noqa: F401
from mim_plugins.fidelity import check
from mim_plugins.fidelity.common import load_fixture
from mim_plugins.fidelity.semanticmim_train import prepare, recipe_paramwise, train

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURE = osp.join(ROOT, 'tests', 'fixtures', 'official',
                   'semanticmim_maskfeat_bottleneck_8cls_adamw.pt')
STEM = ('cls_token', 'extra_cls_tokens', 'pos_embed', 'extra_cls_pos_embed')


def test_five_adamw_steps_match_the_official_code():
    lines = check(FIXTURE)
    assert [str(line) for line in lines if not line.ok] == []
    assert {'train: scalars', 'train: grad norms', 'train: pred_tokens',
            'train: cls/pos params', 'train: other params'} == {line.name for line in lines}


def test_the_steps_tell_the_folded_cls_tokens_apart():
    """The former layout (each extra token's position row folded into the token, no row of its
    own) runs the same first forward, but trains differently: the fixture catches it."""
    fx = load_fixture(FIXTURE)
    spec = fx['train']
    model = prepare(fx, FIXTURE)
    with torch.no_grad():
        model.extra_cls_tokens.add_(model.extra_cls_pos_embed)
        model.extra_cls_pos_embed.zero_()
    model.extra_cls_pos_embed.requires_grad_(False)
    folded = train(model, fx, recipe_paramwise())
    assert torch.allclose(folded['scalars'][0], spec['scalars'][0], atol=spec['scalar_atol'])
    off = (folded['pred_tokens'] - spec['pred_tokens']).abs().max()
    assert off > 20 * spec['pred_atol']


def _decay(config: str, **backbone) -> dict:
    """``{parameter: weight decay}`` our recipe ``config`` gives a small bottleneck backbone."""
    init_default_scope('mmpretrain')
    holder = nn.Module()
    holder.backbone = MODELS.build(dict(arch=dict(embed_dims=16, num_layers=1, num_heads=2,
                                                  feedforward_channels=32),
                                        img_size=16, patch_size=8, num_cls_tokens=3, **backbone))
    paramwise = Config.fromfile(osp.join(ROOT, config)).optim_wrapper.paramwise_cfg.to_dict()
    wrapper = build_optim_wrapper(holder, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        paramwise_cfg=paramwise))
    names = {id(p): n[len('backbone.'):] for n, p in holder.named_parameters()}
    return {names[id(p)]: group['weight_decay'] for group in wrapper.optimizer.param_groups
            for p in group['params']}


def test_each_recipe_decays_the_cls_tokens_as_its_official_config():
    # MaskFeat: the official paramwise_cfg decays every tensor of more than one dimension but
    # mask_token (its cls_token / pos_embed exemptions are commented out)
    decay = _decay('configs/maskfeat/maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py',
                   type='BottleneckMaskFeatViT')
    assert all(decay[name] == 0.05 for name in STEM) and decay['mask_token'] == 0
    # BEiT: '.cls_token' and '.pos_embed' exempt (every token and row in the official layout)
    decay = _decay('configs/beit/beit-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py',
                   type='BottleneckBEiTViT', use_abs_pos_emb=True, use_rel_pos_bias=False,
                   use_shared_rel_pos_bias=False)
    assert all(decay[name] == 0 for name in STEM)
    assert decay['layers.0.attn.qkv.weight'] == 0.05
