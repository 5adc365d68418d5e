"""What a parity check against an official golden fixture reports, and the shared pieces.

A fixture (``tests/fixtures/official/*.pt``, format ``mim-official-parity/1``) holds an official
``state_dict``, the inputs fed to the official code, its outputs and the L2 norm of each
official parameter's gradient. A check converts the state dict to our names, runs our model and
prints one :class:`Line` per output.

Gradients are compared through the converter itself: the official tensors are made leaves that
require grad, the converter (renames, ``cat``, slices, sums: all differentiable) turns them into
ours, our model runs on those with ``torch.func.functional_call``, and ``backward`` leaves on
each official tensor exactly the gradient the official parameter gets in our model. So a fused
or split tensor needs no hand-written gradient mapping, and a tensor the converter drops, or our
model does not use, shows up as "no gradient".
"""
import math
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Mapping

import torch
from torch import Tensor, nn

from ..utils.errors import UserInputError

FORMAT = 'mim-official-parity/1'
REQUIRED_KEYS = ('format', 'method', 'official_kwargs', 'inputs', 'outputs')


class FixtureError(UserInputError):
    """A fixture file that cannot be checked: missing, truncated, unknown layout or sizes."""


@dataclass
class Line:
    """One compared quantity: ``value`` is max|Δ| (or the max relative error of gradient norms,
    or a count of mismatches), ``ok`` whether it is within ``tol``."""
    fixture: str
    name: str
    value: float
    tol: float
    ok: bool
    note: str = ''

    def __str__(self) -> str:
        status = 'ok  ' if self.ok else 'FAIL'
        note = f'  {self.note}' if self.note else ''
        return f'{status} {self.fixture}: {self.name:<24} {self.value:.3g} (tol {self.tol:.3g}){note}'


def load_fixture(path: str) -> dict:
    """The fixture dict of ``path``, checked for the format and the keys every check reads."""
    if not osp.isfile(path):
        raise FixtureError(f"Fixture '{path}' does not exist. Fix: pass a .pt file of "
                           'tests/fixtures/official/.')
    try:
        fx = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001  (truncated, not a torch file, pickled code)
        raise FixtureError(f"'{path}' cannot be read as a golden fixture ({exc}). Fix: copy it "
                           'again from fixtures/official/ (a truncated file reads this way).'
                           ) from exc
    if not isinstance(fx, dict) or fx.get('format') != FORMAT:
        found = fx.get('format') if isinstance(fx, dict) else type(fx).__name__
        raise FixtureError(f"'{path}' is not a golden fixture: format {found!r}, expected "
                           f"{FORMAT!r}. Fix: pass a file of tests/fixtures/official/.")
    missing = [key for key in REQUIRED_KEYS if key not in fx]
    if missing:
        raise FixtureError(f"'{path}' lacks {missing} (a {FORMAT} file has {list(REQUIRED_KEYS)}). "
                           'Fix: copy the file again from fixtures/official/.')
    return fx


def compare(fixture: str, name: str, mine: Tensor, theirs: Tensor, atol: float) -> Line:
    """max|mine - theirs| against ``atol``; a shape mismatch is a failing line saying so."""
    mine = mine.detach().float()
    if tuple(mine.shape) != tuple(theirs.shape):
        return Line(fixture, name, math.inf, atol, False,
                    f'shape {tuple(mine.shape)}, official {tuple(theirs.shape)}')
    diff = (mine - theirs.float()).abs().max().item() if mine.numel() else 0.0
    return Line(fixture, name, diff, atol, diff <= atol)


def leaves_of(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """A copy of ``state_dict`` whose floating tensors are fresh leaves requiring grad."""
    return {name: (value.detach().clone().requires_grad_(True) if value.is_floating_point()
                   else value.clone()) for name, value in state_dict.items()}


def bind(model: nn.Module, converted: Mapping[str, Tensor], fixture: str) -> Dict[str, Tensor]:
    """``converted`` ready for ``functional_call(model, ...)``: exactly the model's parameters
    and buffers (else ``FixtureError`` naming the difference), buffers and frozen parameters
    detached (no gradient flows into what our model does not train)."""
    own = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    wanted = set(own) | set(buffers)
    missing, extra = sorted(wanted - set(converted)), sorted(set(converted) - wanted)
    if missing or extra:
        raise FixtureError(f"'{fixture}': the converted state dict does not fit the model built "
                           f'from official_kwargs: missing {missing[:8]}, unexpected {extra[:8]}. '
                           'Fix: the fixture and the converter disagree on the layout; pass a '
                           'fixture of a supported official class.')
    bound = {}
    for name, value in converted.items():
        ref = own.get(name, buffers.get(name))
        if tuple(value.shape) != tuple(ref.shape):
            raise FixtureError(f"'{fixture}': {name} has shape {tuple(value.shape)} after "
                               f'conversion, the model built from official_kwargs expects '
                               f'{tuple(ref.shape)}. Fix: official_kwargs and state_dict disagree.')
        trains = name in own and own[name].requires_grad
        bound[name] = value if trains else value.detach()
    return bound


def grad_lines(fixture: str, leaves: Mapping[str, Tensor], grads: Mapping[str, Tensor],
               grads_none: List[str], rtol: float, label: str = 'grads') -> List[Line]:
    """Two lines: gradient norms of every officially trained tensor (max relative error), and
    the gradient pattern (a tensor trained officially and not by us, or the reverse)."""
    worst, worst_name = 0.0, ''
    pattern = []
    for name, theirs in grads.items():
        grad = leaves[name].grad if name in leaves else None
        if grad is None:
            pattern.append(f'{name}: no gradient (official {float(theirs):.3g})')
            continue
        mine = grad.norm().item()
        rel = abs(mine - float(theirs)) / max(abs(float(theirs)), 1e-12)
        if rel > worst:
            worst, worst_name = rel, name
    for name in grads_none:
        grad = leaves[name].grad if name in leaves else None
        if grad is not None and grad.abs().max().item() > 0:
            pattern.append(f'{name}: gradient {grad.norm().item():.3g} (official: none)')
    norm = Line(fixture, f'{label} (rel)', worst, rtol, worst <= rtol,
                f'{len(grads)} tensors, worst {worst_name}' if worst_name else f'{len(grads)} tensors')
    who = Line(fixture, f'{label} (who trains)', len(pattern), 0, not pattern,
               '; '.join(pattern[:4]) + (' ...' if len(pattern) > 4 else ''))
    return [norm, who]





class _Method(nn.Module):
    """``model.<method>`` as a module's forward, so ``functional_call`` can run any method."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *args, **kwargs):
        return getattr(self.model, self.method)(*args, **kwargs)


def call_with(model: nn.Module, tensors: Mapping[str, Tensor], method: str, *args, **kwargs):
    """``model.<method>(*args, **kwargs)`` with its parameters and buffers replaced by
    ``tensors`` (from :func:`bind`): gradients flow back to whatever built them."""
    params = {f'model.{name}': value for name, value in tensors.items()}
    return torch.func.functional_call(_Method(model, method), params, args, kwargs)
