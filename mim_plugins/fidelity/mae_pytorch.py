"""Parity with pengzhiliang/MAE-pytorch (``mae_pytorch``: its ``PretrainVisionTransformer``
and the loss of its ``train_one_epoch``; ``mae_pytorch_finetune``: its fine-tuning
``VisionTransformer``).

The official state dict goes through :func:`~mim_plugins.utils.convert_mae_pytorch.
convert_mae_pytorch` (which also writes the fixed 1-D position tables: they are not in the
official state dict, so a wrong table shows up in the outputs), then:

* pretraining: our ``MAEPytorch`` runs ``loss`` on the fixture's images and mask (given as
  ``data_sample.mask``); hooks read the encoder output and the decoder prediction; the target
  is the head's. Gradients of the loss, per official tensor.
* fine-tuned: the same weights in two stock mmpretrain classifiers, ``BEiTViT`` (layout
  ``beit``) and ``VisionTransformer`` (layout ``vit``, fused qkv bias), each with a
  ``LinearClsHead``: features, logits and gradients of ``sum(logits**2) / numel``.
"""
from typing import Dict, List

from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..utils.convert_mae_pytorch import CheckpointError, convert_mae_pytorch
from .common import FixtureError, Line, bind, call_with, compare, grad_lines, leaves_of

METHODS = ('mae_pytorch', 'mae_pytorch_finetune')
REQUIRED = {'mae_pytorch': dict(inputs=('images', 'bool_masked_pos'),
                                outputs=('latent', 'pred', 'target', 'loss')),
            'mae_pytorch_finetune': dict(inputs=('images', ), outputs=('features', 'logits'))}
TOP_KEYS = ('state_dict', 'grads', 'grads_none', 'atol', 'grad_rtol')
EPS = 1e-6  # LayerNorm eps of every MAE-pytorch model (partial(nn.LayerNorm, eps=1e-6))


def check_fixture(fx: dict, fixture: str) -> None:
    """``FixtureError`` naming what a MAE-pytorch fixture lacks."""
    need = REQUIRED[fx['method']]
    missing = [key for key in TOP_KEYS if key not in fx]
    missing += [f'{group}.{key}' for group, keys in need.items()
                for key in keys if key not in fx.get(group, {})]
    if fx['method'] == 'mae_pytorch' and 'loss_settings' not in fx:
        missing.append('loss_settings')
    if missing:
        raise FixtureError(f"'{fixture}' lacks {missing}, which a {fx['method']} fixture has "
                           '(tests/fixtures/official/README.md, "MAE-pytorch"). Fix: copy the '
                           'file again from fixtures/official/.')
    if str(fx['official_kwargs'].get('norm_layer')) != 'partial(nn.LayerNorm, eps=1e-6)':
        raise FixtureError(f"'{fixture}': norm_layer {fx['official_kwargs'].get('norm_layer')!r}"
                           ' is not the one of MAE-pytorch\'s models. Fix: eps=1e-6 LayerNorm.')


def pretrain_config(k: dict, settings: dict) -> dict:
    """Our ``MAEPytorch`` for the official ``PretrainVisionTransformer`` kwargs ``k``."""
    norm = dict(type='LN', eps=EPS)
    size, patch = k['img_size'], k['patch_size']
    scale = float(k.get('init_values') or 0.)
    return dict(
        type='MAEPytorch', mask_ratio=settings['mask_ratio'],
        backbone=dict(type='MAEPytorchViT', img_size=size, patch_size=patch, norm_cfg=norm,
                      layer_scale_init_value=scale,
                      arch=dict(embed_dims=k['encoder_embed_dim'], num_layers=k['encoder_depth'],
                                num_heads=k['encoder_num_heads'],
                                feedforward_channels=int(k['encoder_embed_dim'] * k['mlp_ratio']))),
        neck=dict(type='MAEPytorchDecoder', num_patches=(size // patch)**2, patch_size=patch,
                  embed_dim=k['encoder_embed_dim'], decoder_embed_dim=k['decoder_embed_dim'],
                  decoder_depth=k['decoder_depth'], decoder_num_heads=k['decoder_num_heads'],
                  mlp_ratio=k['mlp_ratio'], layer_scale_init_value=scale, norm_cfg=norm),
        head=dict(type='MAEPytorchHead', patch_size=patch, mean=settings['mean'],
                  std=settings['std'], norm_pix=settings['normlize_target']))


def classifier_config(k: dict, layout: str) -> dict:
    """A stock ``ImageClassifier`` for the official fine-tuning ``VisionTransformer`` kwargs:
    ``BEiTViT`` (layout ``beit``) or ``VisionTransformer`` (``vit``)."""
    dim = k['embed_dim']
    arch = dict(embed_dims=dim, num_layers=k['depth'], num_heads=k['num_heads'],
                feedforward_channels=int(dim * k['mlp_ratio']))
    common = dict(arch=arch, img_size=k['img_size'], patch_size=k['patch_size'],
                  with_cls_token=False, out_type='avg_featmap', final_norm=False,
                  norm_cfg=dict(type='LN', eps=EPS),
                  layer_scale_init_value=float(k.get('init_values') or 0.))
    backbone = (dict(type='BEiTViT', use_abs_pos_emb=True, use_rel_pos_bias=False, **common)
                if layout == 'beit' else dict(type='VisionTransformer', **common))
    return dict(type='ImageClassifier', backbone=backbone,
                head=dict(type='LinearClsHead', num_classes=k['num_classes'], in_channels=dim))


def converted(fx: dict, fixture: str, layout: str, img_size: int):
    """Official leaves and their conversion (``FixtureError`` for a refused state dict)."""
    leaves = leaves_of(fx['state_dict'])
    try:
        return leaves, convert_mae_pytorch(leaves, layout, img_size=img_size).state_dict
    except CheckpointError as exc:
        raise FixtureError(f"'{fixture}': {exc}") from exc


def run_pretrain(fx: dict, fixture: str) -> List[Line]:
    k = fx['official_kwargs']
    model = MODELS.build(pretrain_config(k, fx['loss_settings']))
    model.eval()
    leaves, state = converted(fx, fixture, 'beit', k['img_size'])
    tensors = bind(model, state, fixture)
    images, mask = fx['inputs']['images'].float(), fx['inputs']['bool_masked_pos'].bool()
    seen: Dict[str, Tensor] = {}
    hooks = [model.backbone.register_forward_hook(lambda m, a, out: seen.update(latent=out)),
             model.neck.register_forward_hook(lambda m, a, out: seen.update(pred=out))]
    try:
        losses = call_with(model, tensors, 'loss', images,
                           [DataSample().set_mask(row) for row in mask])
    finally:
        for hook in hooks:
            hook.remove()
    losses['loss'].backward()
    ours = dict(seen, loss=losses['loss'], target=model.head.target(images, mask))
    lines = [compare(fixture, name, ours[name], fx['outputs'][name], fx['atol'])
             for name in REQUIRED['mae_pytorch']['outputs']]
    return lines + grad_lines(fixture, leaves, fx['grads'], list(fx['grads_none']),
                              fx['grad_rtol'])


def run_finetune(fx: dict, fixture: str) -> List[Line]:
    k = fx['official_kwargs']
    if not k.get('use_mean_pooling', True):
        raise FixtureError(f"'{fixture}': use_mean_pooling=False has no stock counterpart "
                           '(the first patch token). Fix: a mean-pooling fixture.')
    lines = []
    for layout in ('beit', 'vit'):
        model = MODELS.build(classifier_config(k, layout))
        model.eval()
        leaves, state = converted(fx, fixture, layout, k['img_size'])
        tensors = bind(model, state, fixture)
        images = fx['inputs']['images'].float()
        feats = call_with(model, tensors, 'extract_feat', images)[-1]
        logits = call_with(model, tensors, 'forward', images, mode='tensor')
        (logits**2).sum().div(logits.numel()).backward()
        backbone = 'BEiTViT' if layout == 'beit' else 'VisionTransformer'
        ours = dict(features=feats, logits=logits)
        lines += [compare(fixture, f'{name} ({backbone})', ours[name], fx['outputs'][name],
                          fx['atol']) for name in REQUIRED['mae_pytorch_finetune']['outputs']]
        lines += grad_lines(fixture, leaves, fx['grads'], list(fx['grads_none']),
                            fx['grad_rtol'], label=f'grads ({backbone})')
    return lines


def run(fx: dict, fixture: str) -> List[Line]:
    """The lines of a MAE-pytorch fixture (either method)."""
    check_fixture(fx, fixture)
    init_default_scope('mmpretrain')
    return (run_pretrain if fx['method'] == 'mae_pytorch' else run_finetune)(fx, fixture)
