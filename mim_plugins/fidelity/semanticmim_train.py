"""Training parity of SemanticMIM's MaskFeat bottleneck: AdamW steps against the official code.

The fixture (``method = 'semanticmim_maskfeat_train'``) holds the official ``MaskFeatViTOurs``
weights and inputs, the official recipe's optimizer, gradient clipping and weight-decay rule
(``configs/maskfeat/maskfeat_bottleneck_pretrain.py``), and what ``train['steps']`` steps did:
the scalar and the total gradient norm before each step, the parameters and the forward after
the last. Ours loads the converted weights, builds its optimizer from OUR recipe
(:data:`RECIPE`'s ``optim_wrapper``: the decay rule is what is checked) with the fixture's
learning rate, betas, weight decay and max norm, and runs the same steps. The forward pass alone
cannot tell how the cls tokens are parameterised; these steps can (AdamW, decay and clipping see
each parameter).
"""
import copy
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import Tensor, nn

from ..utils.convert_semanticmim import convert_semanticmim
from .common import FixtureError, Line, compare
from .semanticmim import build_model

METHOD = 'semanticmim_maskfeat_train'
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECIPE = osp.join(ROOT, 'configs', 'maskfeat',
                  'maskfeat-bottleneck_vit-base-p16_8xb256-coslr-300e_in1k.py')


def recipe_paramwise(path: str = RECIPE) -> dict:
    """The ``paramwise_cfg`` of the ``optim_wrapper`` of our config at ``path``."""
    if not osp.isfile(path):
        raise FixtureError(f"our recipe '{path}' is not there (the check reads its weight-decay "
                           'rule). Fix: run from a source checkout of the project.')
    return Config.fromfile(path).optim_wrapper.paramwise_cfg.to_dict()


def prepare(fx: dict, fixture: str) -> nn.Module:
    """Our backbone with the fixture's official starting weights, converted."""
    model = build_model(dict(fx, method='semanticmim_maskfeat'), fixture)
    model.load_state_dict(convert_semanticmim(fx['state_dict']).state_dict, strict=True)
    return model


def train(model: nn.Module, fx: dict, paramwise_cfg: dict) -> Dict[str, Tensor]:
    """Run the fixture's steps on ``model``: ``scalars`` and ``grad_norms`` ``(steps,)``,
    ``pred_tokens`` after the last step."""
    official = fx['train']['optim_wrapper']
    holder = nn.Module()
    holder.backbone = model  # the recipe's keys see the algorithm's names ('backbone.*')
    wrapper = build_optim_wrapper(holder, dict(
        type='OptimWrapper', optimizer=copy.deepcopy(official['optimizer']),
        clip_grad=copy.deepcopy(official['clip_grad']), paramwise_cfg=copy.deepcopy(paramwise_cfg)))
    inputs = fx['inputs']
    images = inputs['images'].float()
    predicted, hidden = inputs['mask_index'].bool(), ~inputs['img_index'].bool()
    scalars, norms = [], []
    for _ in range(fx['train']['steps']):
        pred = model.forward_streams(images, predicted, hidden)[1]
        scalar = (pred ** 2).sum() / pred.numel()
        scalars.append(scalar.detach())
        wrapper.backward(scalar)
        trained = [p for p in model.parameters() if p.grad is not None]
        norms.append(torch.nn.utils.clip_grad_norm_(trained, float('inf')).detach())
        wrapper.step()
        wrapper.zero_grad()
    with torch.no_grad():
        pred = model.forward_streams(images, predicted, hidden)[1]
    return dict(scalars=torch.stack(scalars), grad_norms=torch.stack(norms), pred_tokens=pred)


def run(fx: dict, fixture: str, paramwise_cfg: Optional[dict] = None) -> List[Line]:
    """Lines for the step scalars, gradient norms, parameters and forward after the steps."""
    if 'train' not in fx:
        raise FixtureError(f"'{fixture}' lacks 'train' (the steps of the official code). Fix: "
                           'copy the file again from fixtures/official/.')
    spec = fx['train']
    model = prepare(fx, fixture)  # in eval mode, as the official steps ran
    ours = train(model, fx, recipe_paramwise() if paramwise_cfg is None else paramwise_cfg)
    norms_tol = float(fx['grad_rtol']) * float(spec['grad_norms'].abs().max())
    lines = [compare(fixture, 'train: scalars', ours['scalars'], spec['scalars'],
                     spec['scalar_atol']),
             compare(fixture, 'train: grad norms', ours['grad_norms'], spec['grad_norms'],
                     norms_tol),
             compare(fixture, 'train: pred_tokens', ours['pred_tokens'], spec['pred_tokens'],
                     spec['pred_atol'])]
    theirs = convert_semanticmim(spec['state_dict']).state_dict
    mine = dict(model.state_dict())
    stem = ('cls_token', 'extra_cls_tokens', 'pos_embed', 'extra_cls_pos_embed')
    for label, names in (('train: cls/pos params', [n for n in theirs if n in stem]),
                         ('train: other params', [n for n in theirs if n not in stem])):
        missing = [n for n in names if n not in mine]
        if missing:
            lines.append(Line(fixture, label, float('inf'), spec['atol'], False,
                              f'we have no {missing[:3]}'))
            continue
        worst = max(float((mine[n] - theirs[n]).abs().max()) for n in names)
        lines.append(Line(fixture, label, worst, spec['atol'], worst <= spec['atol']))
    return lines
