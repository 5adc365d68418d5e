"""SemMAE's masking against the official ``random_masking_setting3`` (fixture ``semmae_counts``).

The fixture holds no weights: part-size layouts, their spatial part maps, mask ratios, λ values
and forced part orders, with the official per-part counts (exact) and Monte Carlo statistics of
the official final masks. Four lines come out: the intra-part counts and the counts before the
fixed-total fix-up (both exact), the fixed total of every mask we draw, and our Monte Carlo
per-part means of the final mask against the official ones.
"""
import itertools
import math
from dataclasses import replace
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from ..masking import intra_part_counts, part_mask_counts, semantic_part_mask
from .common import FixtureError, Line, compare

METHOD = 'semmae_counts'
INPUTS = ('part_sizes', 'part_ids', 'mask_ratios', 'lambdas', 'part_orders')
OUTPUTS = ('intra_counts', 'counts_before_fixup', 'mc_mean_per_part', 'mc_se_per_part',
           'mc_total_masked_min', 'mc_total_masked_max')
# The official fix-up leaves a surplus/deficit to the tie order of a non-stable argsort; the
# fixture's README measures up to 0.54 patch per part between it and a uniform fix-up (ours).
MC_SLACK = 0.6
DRAWS = 3000  # per layout x ratio x λ: about 8 s on one core


def _check(fx: dict, fixture: str) -> None:
    """``FixtureError`` unless ``fx`` is a ``semmae_counts`` fixture with every key read here."""
    if fx.get('method') != METHOD:
        raise FixtureError(f"'{fixture}' holds method {fx.get('method')!r}, expected {METHOD!r}. "
                           'Fix: pass tests/fixtures/official/semmae_counts.pt, or the check of '
                           'its own method.')
    for part, keys in (('inputs', INPUTS), ('outputs', OUTPUTS)):
        missing = [key for key in keys if key not in fx.get(part, {})]
        if missing:
            raise FixtureError(f"'{fixture}': {part} lack {missing} (a {METHOD} fixture has "
                               f'{part} {list(keys)}). Fix: copy the file again from '
                               'tests/fixtures/official/.')
    sizes, ids = fx['inputs']['part_sizes'], fx['inputs']['part_ids']
    counted = torch.stack([row.bincount(minlength=sizes.shape[1]) for row in ids])
    if counted.shape != sizes.shape or not torch.equal(counted, sizes):
        raise FixtureError(f"'{fixture}': inputs part_ids {tuple(ids.shape)} do not have the "
                           f'part sizes of inputs part_sizes {tuple(sizes.shape)}. Fix: copy '
                           'the file again from tests/fixtures/official/.')


def _counts_before_fixup(sizes: Tensor, ratios: Sequence[float], lams: Sequence[float],
                         orders: Tensor) -> Tensor:
    """Ours for every case: int64 ``(layouts, ratios, λ, orders, K)`` from ``sizes``
    ``(layouts, K)`` and ``orders`` ``(orders, K)``."""
    n_layouts, n_orders = len(sizes), len(orders)
    rows = sizes.repeat_interleave(n_orders, 0)  # (layouts * orders, K), layout-major
    cases = torch.stack([torch.stack([part_mask_counts(rows, r, lam, orders.repeat(n_layouts, 1))
                                      for lam in lams]) for r in ratios])
    return cases.view(len(ratios), len(lams), n_layouts, n_orders, -1).permute(2, 0, 1, 3, 4)


def _monte_carlo(part_ids: Tensor, num_parts: int, ratios: Sequence[float],
                 lams: Sequence[float], draws: int, seed: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Our final masks, ``draws`` per case: per-part masked means and standard errors
    ``(layouts, ratios, λ, K)`` and the masked totals ``(layouts, ratios, λ, draws)``.

    Every layout shares one batch per ratio and λ (a part absent from an image takes 0, as in
    the official code, so mixing layouts in a batch changes nothing)."""
    generator = torch.Generator().manual_seed(seed)
    ids = part_ids.repeat_interleave(draws, 0)  # (layouts * draws, L)
    means, ses, totals = [], [], []
    for r, lam in itertools.product(ratios, lams):
        mask = semantic_part_mask(ids, r, lam, generator=generator)
        per_part = torch.zeros(len(ids), num_parts).scatter_add_(1, ids, mask.float())
        per_part = per_part.view(len(part_ids), draws, num_parts)
        means.append(per_part.mean(1))
        ses.append(per_part.std(1) / math.sqrt(draws))
        totals.append(mask.sum(1).view(len(part_ids), draws))
    shape = (len(ratios), len(lams), len(part_ids))
    return tuple(torch.stack(x).view(*shape, *x[0].shape[1:]).movedim(2, 0)
                 for x in (means, ses, totals))


def run(fx: dict, fixture: str, draws: int = DRAWS, seed: int = 0) -> List[Line]:
    """Lines ``intra_counts``, ``counts_before_fixup``, ``total masked``, ``mc_mean_per_part``
    for the ``semmae_counts`` fixture dict ``fx`` (``fixture`` names it in lines and errors).

    Sizes (K, L, layouts, ratios, λ, orders) are read from ``fx['inputs']``: ``part_sizes``
    ``(layouts, K)``, ``part_ids`` ``(layouts, L)``, ``mask_ratios`` ``(ratios,)``, ``lambdas``
    ``(λ,)``, ``part_orders`` ``(orders, K)``. ``draws`` final masks per layout, ratio and λ.
    """
    _check(fx, fixture)
    inputs, official = fx['inputs'], fx['outputs']
    sizes, orders = inputs['part_sizes'].long(), inputs['part_orders'].long()
    ratios = [float(r) for r in inputs['mask_ratios']]
    lams = [float(lam) for lam in inputs['lambdas']]
    names = fx.get('layout_names') or [str(i) for i in range(len(sizes))]

    intra = torch.stack([intra_part_counts(sizes, r) for r in ratios], 1)
    counts = _counts_before_fixup(sizes, ratios, lams, orders)
    lines = [compare(fixture, 'intra_counts', intra, official['intra_counts'], 0.0),
             replace(compare(fixture, 'counts_before_fixup', counts,
                             official['counts_before_fixup'], 0.0),
                     note=f'{counts[..., 0].numel()} cases (layout x ratio x λ x order)')]

    mean, se, total = _monte_carlo(inputs['part_ids'].long(), sizes.shape[1], ratios, lams,
                                   draws, seed)
    # The official total never varies (min = max); a draw of ours off either one fails.
    off = torch.maximum((total - official['mc_total_masked_min'][..., None]).abs(),
                        (total - official['mc_total_masked_max'][..., None]).abs())
    lines.append(Line(fixture, 'total masked', off.max().item(), 0.0, bool((off == 0).all()),
                      f'{total.numel()} masks, max |ours - official total|'))

    diff = (mean - official['mc_mean_per_part']).abs()
    allowed = MC_SLACK + 4 * (se ** 2 + official['mc_se_per_part'] ** 2).sqrt()
    worst = (diff / allowed).flatten().argmax().item()
    li, ri, lj, part = (int(i) for i in torch.unravel_index(torch.tensor(worst), diff.shape))
    case = (li, ri, lj, part)
    note = (f"worst: layout '{names[li]}', r={ratios[ri]:g}, λ={lams[lj]:g}, part {part}: ours "
            f"{mean[case]:.3f} vs official {official['mc_mean_per_part'][case]:.3f}; "
            f'max |Δ| anywhere {diff.max().item():.3f}; {draws} draws per case; '
            f'tol = {MC_SLACK} + 4·se')
    lines.append(Line(fixture, 'mc_mean_per_part', diff[case].item(), allowed[case].item(),
                      bool((diff <= allowed).all()), note))
    return lines
