"""Parity of our ``SupMAE`` with the official ``SupervisedMaskedAutoencoderViT`` (SupMAE repo).

The model is built from the fixture's ``official_kwargs`` (any sizes), the official state dict is
renamed with ``convert_official_vit`` and the official mask is replayed: the fixture's ``noise``
gives the mask, which reaches ``SupMAE.loss`` as ``data_sample.mask`` as any given mask would.
One pass of ``SupMAE.loss`` gives the losses and, through forward hooks, the encoder output, the
decoder output and the branch's logits; ``loss_total`` is what mmengine optimises
(``parse_losses``). It runs in eval mode (``outputs``, ``grads``) and in train mode, where the
branch's BatchNorm uses batch statistics (``outputs_train``, ``grads_train``).
"""
import math
import re
from dataclasses import replace
from typing import Dict, List, Tuple

import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..models.supmae import SupMAE
from ..utils.convert import convert_official_vit
from .common import FixtureError, Line, bind, call_with, compare, grad_lines, leaves_of

METHOD = 'supmae'
# the official constructor's defaults, for kwargs a fixture leaves out
OFFICIAL_DEFAULTS = dict(img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24,
                         num_heads=16, decoder_embed_dim=512, decoder_depth=8,
                         decoder_num_heads=16, mlp_ratio=4., norm_layer='nn.LayerNorm',
                         norm_pix_loss=False, cls_hidden_mlp=3072, nb_classes=1000,
                         global_pool=True, mlp_depth=2)
# official norm_layer strings we can build: nn.LayerNorm (eps 1e-5) or a partial with its eps
NORM_LAYER = re.compile(r'nn\.LayerNorm|partial\(nn\.LayerNorm,\s*eps=([0-9.eE+-]+)\)')
REQUIRED = dict(inputs=('images', 'noise', 'labels'),
                outputs=('loss_rec', 'pred', 'mask', 'latent', 'logits', 'loss_cls', 'loss_total'),
                outputs_train=('logits', 'loss_cls', 'loss_total'),
                loss_settings=('mask_ratio', 'temperature', 'cls_loss_ratio'))
LATENT_NOTE = 'kept rows permuted from our patch order to the official ascending-noise order'
# an official gradient norm this far below the largest one is float32 rounding of a zero
ZERO_FLOOR = 1e-6
TOP_KEYS = ('state_dict', 'grads', 'grads_train', 'grads_none', 'atol', 'grad_rtol')


def check_fixture(fx: dict, fixture: str) -> None:
    """``FixtureError`` naming the file, what a SupMAE fixture has and the fix."""
    if fx.get('method') != METHOD:
        raise FixtureError(f"'{fixture}': method {fx.get('method')!r} is not a SupMAE fixture "
                           f"({METHOD!r}). Fix: pass it to the check of its method "
                           '(mim_plugins.fidelity.check picks it).')
    missing = [key for key in TOP_KEYS if key not in fx]
    missing += [f'{group}.{key}' for group, keys in REQUIRED.items()
                for key in keys if key not in fx.get(group, {})]
    if missing:
        raise FixtureError(f"'{fixture}' lacks {missing}, which a SupMAE fixture has (see "
                           'tests/fixtures/official/README.md, "SupMAE"). Fix: copy the file '
                           'again from fixtures/official/.')


def _norm_eps(norm_layer: str, fixture: str) -> float:
    """The LayerNorm eps of the official ``norm_layer`` string."""
    match = NORM_LAYER.fullmatch(str(norm_layer).strip())
    if match is None:
        raise FixtureError(f"'{fixture}': official norm_layer {norm_layer!r} has no counterpart "
                           "here (we build LayerNorm only). Fix: norm_layer 'nn.LayerNorm' or "
                           "'partial(nn.LayerNorm, eps=...)'.")
    return float(match.group(1)) if match.group(1) else 1e-5


def _head_kind(hidden: int, mlp_depth: int, fixture: str) -> str:
    """``'linear'`` or ``'mlp'``, as the official constructor picks from its two kwargs."""
    if hidden == 0:  # the official code builds one Linear and ignores mlp_depth
        if mlp_depth not in (1, 2):
            raise FixtureError(f"'{fixture}': mlp_depth={mlp_depth} is not an official head "
                               '(1 or 2). Fix: mlp_depth=2, the official default.')
        return 'linear'
    if mlp_depth != 2:
        raise FixtureError(f"'{fixture}': mlp_depth={mlp_depth} with cls_hidden_mlp={hidden}: "
                           'our head with a hidden layer is Linear-BN-ReLU-Linear, the official '
                           'mlp_depth=2 (the official code accepts no other). Fix: mlp_depth=2, '
                           'or cls_hidden_mlp=0 for a linear head.')
    return 'mlp'


def model_config(kwargs: dict, settings: dict, fixture: str) -> dict:
    """Our SupMAE config for the official constructor ``kwargs`` and the ``loss_settings``."""
    unknown = sorted(set(kwargs) - set(OFFICIAL_DEFAULTS))
    if unknown:
        raise FixtureError(f"'{fixture}': official_kwargs {unknown} are not arguments of the "
                           f'official SupervisedMaskedAutoencoderViT ({list(OFFICIAL_DEFAULTS)}). '
                           'Fix: pass a fixture made with that class.')
    k = {**OFFICIAL_DEFAULTS, **kwargs}
    if k['in_chans'] != 3:
        raise FixtureError(f"'{fixture}': in_chans={k['in_chans']}: the official loss patchifies "
                           '3 channels only, and so do we. Fix: in_chans=3.')
    size = k['img_size']
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise FixtureError(f"'{fixture}': img_size {size} is not square; both patchify "
                               'functions need square images. Fix: a square img_size.')
        size = size[0]
    patch, dim, dec = k['patch_size'], k['embed_dim'], k['decoder_embed_dim']
    norm = dict(type='LN', eps=_norm_eps(k['norm_layer'], fixture))
    head = _head_kind(k['cls_hidden_mlp'], k['mlp_depth'], fixture)
    hidden = dict(hidden_channels=k['cls_hidden_mlp']) if head == 'mlp' else {}
    return dict(
        type='SupMAE',
        backbone=dict(
            type='SemMAEViT', img_size=size, patch_size=patch, norm_cfg=norm,
            mask_ratio=settings['mask_ratio'],
            arch=dict(embed_dims=dim, num_layers=k['depth'], num_heads=k['num_heads'],
                      feedforward_channels=int(dim * k['mlp_ratio']))),  # timm's int()
        neck=dict(type='MAEPretrainDecoder', num_patches=(size // patch) ** 2, patch_size=patch,
                  in_chans=3, embed_dim=dim, decoder_embed_dim=dec,
                  decoder_depth=k['decoder_depth'], decoder_num_heads=k['decoder_num_heads'],
                  mlp_ratio=k['mlp_ratio'], norm_cfg=norm),
        head=dict(type='MAEPretrainHead', norm_pix=bool(k['norm_pix_loss']), patch_size=patch,
                  in_channels=3, loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        cls_head=dict(type='VisibleTokenClsHead', num_classes=k['nb_classes'], in_channels=dim,
                      pool='avg' if k['global_pool'] else 'cls', head=head,
                      temperature=settings['temperature'], **hidden),
        cls_loss_ratio=settings['cls_loss_ratio'])


def official_mask(noise: Tensor, mask_ratio: float) -> Tensor:
    """The official ``random_masking`` on ``noise`` ``(B, L)``: bool ``(B, L)``, True = removed;
    the first ``int(L * (1 - mask_ratio))`` patches in ascending noise are kept."""
    keep = int(noise.shape[1] * (1 - mask_ratio))
    mask = torch.ones_like(noise, dtype=torch.bool)
    return mask.scatter(1, noise.argsort(1)[:, :keep], False)


def to_official_order(latent: Tensor, noise: Tensor) -> Tensor:
    """Our encoder output ``(B, 1 + keep, C)`` (kept tokens in ascending patch index) with its
    kept rows put in the official order (ascending ``noise`` ``(B, L)``)."""
    kept = noise.argsort(1)[:, :latent.shape[1] - 1]  # official order of the kept patch ids
    rank = kept.argsort(1).argsort(1)  # where each of them sits in ascending patch order
    rows = latent[:, 1:].gather(1, rank.unsqueeze(-1).expand(-1, -1, latent.shape[-1]))
    return torch.cat([latent[:, :1], rows], 1)


def forward(model: SupMAE, tensors: Dict[str, Tensor], images: Tensor, labels: Tensor,
            mask: Tensor) -> Dict[str, Tensor]:
    """``SupMAE.loss`` on ``tensors`` with the given ``mask`` ``(B, L)`` in the data samples:
    its losses, ``loss_total``, and ``latent``/``mask``/``pred``/``logits`` read by hooks."""
    grid = model.backbone.patch_resolution
    samples = [DataSample().set_gt_label(int(y)).set_mask(m.view(*grid))
               for y, m in zip(labels, mask)]
    seen: Dict[str, Tensor] = {}

    def keep(name: str, pick=lambda out: out):
        return lambda module, args, out: seen.__setitem__(name, pick(out))

    hooks = [model.neck.register_forward_hook(keep('pred')),
             model.cls_head.register_forward_hook(keep('logits'))]
    encode = model.backbone.encode

    def spy(*args, **kwargs):  # the encoding the loss reads (encode is not a forward: no hook)
        encoding = encode(*args, **kwargs)
        seen['backbone'] = (encoding.main, encoding.hidden.float())
        return encoding

    model.backbone.encode = spy
    try:
        losses = call_with(model, tensors, 'loss', images, samples)
    finally:
        del model.backbone.encode
        for hook in hooks:
            hook.remove()
    latent, our_mask = seen.pop('backbone')
    total, _ = model.parse_losses(losses)
    return dict(seen, latent=latent, mask=our_mask, loss_rec=losses['loss_rec'],
                loss_cls=losses['loss_cls'], loss_total=total)


def run_mode(model: SupMAE, fx: dict, fixture: str, train: bool
             ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """Our outputs in eval or train mode, ``backward`` of ``loss_total`` done, and the official
    leaves holding their gradients."""
    model.train(train)
    leaves = leaves_of(fx['state_dict'])
    conversion = convert_official_vit(leaves)
    if conversion.unknown:
        raise FixtureError(f"'{fixture}': official tensors {conversion.unknown[:8]} have no "
                           'counterpart in our SupMAE. Fix: pass a fixture of '
                           'SupervisedMaskedAutoencoderViT.')
    tensors = bind(model, conversion.state_dict, fixture)
    inputs = fx['inputs']
    mask = official_mask(inputs['noise'], fx['loss_settings']['mask_ratio'])
    outputs = forward(model, tensors, inputs['images'].float(), inputs['labels'], mask)
    outputs['loss_total'].backward()
    return outputs, leaves


def gradient_lines(fixture: str, leaves: Dict[str, Tensor], grads: Dict[str, Tensor],
                   frozen: List[str], rtol: float, label: str) -> List[Line]:
    """``grad_lines``, plus one line for the gradients that are zero up to float32 rounding.

    In train mode the Linear bias before the branch's BatchNorm gets no gradient analytically
    (the batch mean cancels it); both codes leave rounding noise there (official 3e-10 in
    ``supmae_tiny.pt``), whose ratio means nothing. An official norm below ``ZERO_FLOOR`` times
    the largest one counts as zero, and ours must be below the same bound.
    """
    floor = ZERO_FLOOR * max(float(v) for v in grads.values())
    zero = sorted(name for name, value in grads.items() if float(value) <= floor)
    lines = grad_lines(fixture, leaves, {k: v for k, v in grads.items() if k not in zero},
                       frozen, rtol, label=label)
    if not zero:
        return lines
    grads_of = [getattr(leaves.get(name), 'grad', None) for name in zero]
    worst = max(math.inf if grad is None else grad.norm().item() for grad in grads_of)
    return lines + [Line(fixture, f'{label} (zero)', worst, floor, worst <= floor,
                         f'{len(zero)} officially ~0 ({", ".join(zero[:4])}): our norm '
                         f'{worst:.3g}, official {max(float(grads[n]) for n in zero):.3g}')]


def run(fx: dict, fixture: str) -> List[Line]:
    """One :class:`Line` per official output, eval then train mode, and the gradient lines."""
    check_fixture(fx, fixture)
    init_default_scope('mmpretrain')
    model = MODELS.build(model_config(fx['official_kwargs'], fx['loss_settings'], fixture))
    atol, rtol, frozen = fx['atol'], fx['grad_rtol'], list(fx['grads_none'])
    ours, leaves = run_mode(model, fx, fixture, train=False)
    ours['latent'] = to_official_order(ours['latent'], fx['inputs']['noise'])
    lines = []
    for name in REQUIRED['outputs']:
        line = compare(fixture, name, ours[name], fx['outputs'][name], atol)
        lines.append(replace(line, note=f'{line.note} {LATENT_NOTE}'.strip())
                     if name == 'latent' else line)
    lines += gradient_lines(fixture, leaves, fx['grads'], frozen, rtol, 'grads')
    ours, leaves = run_mode(model, fx, fixture, train=True)
    lines += [compare(fixture, f'{name} (train)', ours[name], fx['outputs_train'][name], atol)
              for name in REQUIRED['outputs_train']]
    return lines + gradient_lines(fixture, leaves, fx['grads_train'], frozen, rtol,
                                  'grads (train)')
