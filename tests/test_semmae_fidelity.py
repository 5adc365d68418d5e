"""SemMAE's mask counts against the official golden fixture, and the official rounding rules."""
import copy
import os.path as osp

import pytest
import torch

from conftest import ROOT
from mim_plugins.fidelity import semmae
from mim_plugins.fidelity.common import FixtureError
from mim_plugins.masking import intra_part_counts, num_masked, part_mask_counts

FIXTURE = osp.join(ROOT, 'tests', 'fixtures', 'official', 'semmae_counts.pt')
NAMES = ['intra_counts', 'counts_before_fixup', 'total masked', 'mc_mean_per_part']


@pytest.fixture(scope='module')
def fx() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def by_name(lines) -> dict:
    assert [line.name for line in lines] == NAMES
    return {line.name: line for line in lines}


def test_every_line_matches_the_official_code(fx):
    lines = by_name(semmae.run(fx, 'semmae_counts.pt'))
    assert all(line.ok for line in lines.values()), '\n'.join(map(str, lines.values()))
    assert lines['counts_before_fixup'].value == 0 and lines['intra_counts'].value == 0
    assert lines['total masked'].value == 0


def test_a_count_off_by_one_fails(fx):
    bad = copy.deepcopy(fx)
    bad['outputs']['counts_before_fixup'][1, 0, 2, 3, 4] += 1
    lines = by_name(semmae.run(bad, 'bad.pt', draws=50))
    assert not lines['counts_before_fixup'].ok and lines['counts_before_fixup'].value == 1
    assert lines['intra_counts'].ok and lines['total masked'].ok


def test_shifted_monte_carlo_means_fail(fx):
    bad = copy.deepcopy(fx)
    bad['outputs']['mc_mean_per_part'] += 2
    lines = by_name(semmae.run(bad, 'bad.pt', draws=500))
    assert not lines['mc_mean_per_part'].ok
    assert lines['counts_before_fixup'].ok and lines['total masked'].ok


def test_a_varying_official_total_fails(fx):
    bad = copy.deepcopy(fx)
    bad['outputs']['mc_total_masked_max'][0, 0, 0] += 1
    assert not by_name(semmae.run(bad, 'bad.pt', draws=20))['total masked'].ok


def test_wrong_or_incomplete_fixture_names_the_file_and_the_fix(fx):
    other = dict(fx, method='supmae')
    with pytest.raises(FixtureError, match=r"'x\.pt' holds method 'supmae', expected "
                                           r"'semmae_counts'\. Fix:"):
        semmae.run(other, 'x.pt')
    lacking = dict(fx, inputs={k: v for k, v in fx['inputs'].items() if k != 'part_orders'})
    with pytest.raises(FixtureError, match=r"'y\.pt': inputs lack \['part_orders'\].*Fix:"):
        semmae.run(lacking, 'y.pt')
    shuffled = copy.deepcopy(fx)
    shuffled['inputs']['part_ids'][0, 0] = (shuffled['inputs']['part_ids'][0, 0] + 1) % 7
    with pytest.raises(FixtureError, match='do not have the part sizes'):
        semmae.run(shuffled, 'z.pt')


def test_intra_rounds_halves_to_even():
    # 6 x 0.75 = 4.5 -> 4 and 10 x 0.75 = 7.5 -> 8 (torch.round); half-up would give 5 and 8.
    assert intra_part_counts(torch.tensor([6, 10, 2, 3]), 0.75).tolist() == [4, 8, 2, 2]
    assert intra_part_counts(torch.tensor([6]), 0.75).dtype == torch.int64


def test_lambda_blend_rounds_halves_to_even():
    # Parts (6, 10), r = 0.75, L·r = 12: intra (4, 8); inter, part 1 first: (2, 10).
    # λ = 0.75: 0.75·4 + 0.25·2 = 3.5 -> 4, 0.75·8 + 0.25·10 = 8.5 -> 8 (half-up: 4, 9).
    counts = part_mask_counts(torch.tensor([6, 10]), 0.75, 0.75, torch.tensor([1, 0]))
    assert counts.tolist() == [4, 8]
    # λ = 0.5, part 0 first: inter (6, 6), blend (5, 7): no half, both rules agree.
    assert part_mask_counts(torch.tensor([6, 10]), 0.75, 0.5, torch.tensor([0, 1])).tolist() \
        == [5, 7]


def test_inter_budget_is_truncated_per_part():
    # L·r = 196 x 0.6 = 117.6: parts of 60, 80, 56 in that order take 60, trunc(57.6) = 57, 0.
    sizes = torch.tensor([60, 80, 56])
    assert part_mask_counts(sizes, 0.6, 0.0, torch.tensor([0, 1, 2])).tolist() == [60, 57, 0]
    assert num_masked(196, 0.6) == 118  # the mask itself still masks the fixed total
