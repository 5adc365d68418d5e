"""Parity of our SemanticMIM backbones with the official ``MaskFeatViTOurs`` / ``BEiTPretrainViTOurs``.

The fixture's official kwargs pick our model: the bottleneck (``use_bottleneck=True``) is
``BottleneckMaskFeatViT`` / ``BottleneckBEiTViT``; the baseline is mmpretrain's stock
``MaskFeatViT`` / ``BEiTPretrainViT`` (one self-attention stack over the masked sequence; with
the baseline mask, every patch once, that equals the official ``[cls, visible, mask tokens]``
sequence up to the order of the rows). BEiT is built with SemanticMIM's position encoding:
learned absolute embeddings, no relative bias.
"""
from typing import Dict, List

import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch import Tensor, nn

from ..utils.convert_semanticmim import convert_semanticmim
from .common import FixtureError, Line, bind, call_with, compare, grad_lines, leaves_of

METHODS = ('semanticmim_maskfeat', 'semanticmim_beit')
# official kwargs -> ours, for both families; anything else is refused by name
SHARED_KWARGS = ('arch', 'img_size', 'patch_size', 'final_norm', 'drop_rate', 'drop_path_rate',
                 'norm_cfg', 'interpolate_mode')
IGNORED_KWARGS = ('out_type', )  # the official masked forward returns the mask rows whatever it is
BEIT_POSITION = dict(use_abs_pos_emb=True, use_rel_pos_bias=False, use_shared_rel_pos_bias=False)


def build_model(fx: dict, fixture: str) -> nn.Module:
    """Our backbone with the sizes and options of ``fx['official_kwargs']``, in eval mode."""
    kwargs = dict(fx['official_kwargs'])
    family = fx['method'].split('_', 1)[1]
    bottleneck = kwargs.pop('use_bottleneck', False)
    num_cls = kwargs.pop('num_cls_tokens', 1)
    cfg = {key: kwargs.pop(key) for key in SHARED_KWARGS if key in kwargs}
    for key in IGNORED_KWARGS:
        kwargs.pop(key, None)
    if family == 'beit':
        cfg.update(BEIT_POSITION, layer_scale_init_value=kwargs.pop('layer_scale_init_value', 0.1))
    if kwargs:
        raise FixtureError(f"'{fixture}': official_kwargs {sorted(kwargs)} have no counterpart in "
                           f'our {family} backbone (supported: {list(SHARED_KWARGS)}, '
                           'use_bottleneck, num_cls_tokens, layer_scale_init_value for BEiT). '
                           'Fix: make a fixture with the official defaults for those options.')
    if bottleneck:
        cfg['type'] = 'BottleneckMaskFeatViT' if family == 'maskfeat' else 'BottleneckBEiTViT'
        cfg['num_cls_tokens'] = num_cls
    elif num_cls != 1:
        raise FixtureError(f"'{fixture}': a baseline (use_bottleneck=False) with {num_cls} cls "
                           'tokens has no counterpart here (our baselines are the stock '
                           'mmpretrain backbones, 1 cls token). Fix: num_cls_tokens=1.')
    else:
        cfg['type'] = 'MaskFeatViT' if family == 'maskfeat' else 'BEiTPretrainViT'
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg)
    model.eval()
    return model


def traced_forward(model: nn.Module, tensors: Dict[str, Tensor], images: Tensor,
                   visible: Tensor, predicted: Tensor) -> Dict[str, Tensor]:
    """Our outputs under the fixture's names, rows in the official order: ``[cls, visible
    ascending, mask tokens ascending]``. ``visible``/``predicted``: bool ``(B, L)``."""
    trace: Dict[str, Tensor] = {}
    hooks = [layer.register_forward_hook(
        lambda mod, args, out, name=f'layers.{i}': trace.__setitem__(name, out))
        for i, layer in enumerate(model.layers)]
    twins = getattr(model, 'bottleneck_layers', None)
    if twins is not None:
        hooks += [layer.register_forward_hook(
            lambda mod, args, out, name=f'extra_layers.{i}': trace.__setitem__(name, out))
            for i, layer in enumerate(twins)]
    try:
        if twins is not None:
            main, pred = call_with(model, tensors, 'forward_streams', images, predicted, ~visible)
        else:
            out = call_with(model, tensors, 'forward', images, predicted)  # bool (B, L)
            out = out[0] if isinstance(out, tuple) else out  # BEiT: a 1-tuple
    finally:
        for hook in hooks:
            hook.remove()
    if twins is not None:
        n = model.num_cls_tokens
        outputs = dict(cls_tokens=main[:, :n], visible_tokens=main[:, n:], pred_tokens=pred,
                       cls_tokens_prenorm=trace[f'layers.{len(twins) - 1}'][:, :n],
                       pred_tokens_prenorm=trace[f'extra_layers.{len(twins) - 1}'][:, n:])
        for i in range(len(twins)):
            outputs[f'trace.layers.{i}'] = trace[f'layers.{i}']
            outputs[f'trace.extra_layers.{i}'] = trace[f'extra_layers.{i}'][:, n:]
        return outputs
    order = _official_order(visible, predicted)
    rows = lambda x: x.gather(1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # noqa: E731
    full, num_vis = rows(out), int(visible[0].sum())
    last = rows(trace[f'layers.{len(model.layers) - 1}'])
    outputs = dict(cls_tokens=full[:, :1], visible_tokens=full[:, 1:1 + num_vis],
                   pred_tokens=full[:, 1 + num_vis:], cls_tokens_prenorm=last[:, :1],
                   pred_tokens_prenorm=last[:, 1 + num_vis:])
    for i in range(len(model.layers)):
        outputs[f'trace.layers.{i}'] = rows(trace[f'layers.{i}'])
    return outputs


def _official_order(visible: Tensor, predicted: Tensor) -> Tensor:
    """Row indices ``(B, 1 + L)`` into our ``[cls, patch 0 .. L-1]`` sequence that give the
    official ``[cls, visible ascending, predicted ascending]`` (baseline: they partition L)."""
    if not torch.equal(visible, ~predicted):
        raise FixtureError('a baseline fixture must predict exactly the hidden patches '
                           '(mask_index = ~img_index); got overlapping or missing patches. Fix: '
                           'use the bottleneck for separate masks.')
    length = visible.shape[1]
    ids = torch.arange(length).expand_as(visible)
    keys = torch.where(visible, ids, ids + length)  # visible first, each group ascending
    order = keys.argsort(1) + 1
    return torch.cat([order.new_zeros(len(order), 1), order], 1)


def run(fx: dict, fixture: str) -> List[Line]:
    """Every output of the fixture and the gradient check, one :class:`Line` each."""
    if fx['method'] not in METHODS:
        raise FixtureError(f"'{fixture}': method {fx['method']!r} is not a SemanticMIM fixture "
                           f'({METHODS}). Fix: pass it to the check of its method.')
    for key in ('state_dict', 'grads', 'atol', 'grad_rtol'):
        if key not in fx:
            raise FixtureError(f"'{fixture}' lacks '{key}', which a SemanticMIM fixture has. "
                               'Fix: copy the file again from fixtures/official/.')
    inputs = fx['inputs']
    missing = [k for k in ('images', 'img_index', 'mask_index') if k not in inputs]
    if missing:
        raise FixtureError(f"'{fixture}': inputs lack {missing}. Fix: copy the file again.")
    model = build_model(fx, fixture)
    leaves = leaves_of(fx['state_dict'])
    conversion = convert_semanticmim(leaves)
    tensors = bind(model, conversion.state_dict, fixture)
    visible, predicted = inputs['img_index'].bool(), inputs['mask_index'].bool()
    outputs = traced_forward(model, tensors, inputs['images'].float(), visible, predicted)
    lines = [compare(fixture, name, outputs[name], theirs, fx['atol'])
             for name, theirs in fx['outputs'].items() if name in outputs]
    lines += [Line(fixture, name, float('inf'), fx['atol'], False, 'we produce no such output')
              for name in fx['outputs'] if name not in outputs]
    pred = outputs['pred_tokens']
    (pred ** 2).sum().div(pred.numel()).backward()
    return lines + grad_lines(fixture, leaves, fx['grads'], list(fx.get('grads_none', [])),
                              fx['grad_rtol'])
