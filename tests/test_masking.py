"""Exact tests of the mask functions: counts, the SemMAE intra→inter schedule, randomness."""
import itertools

import numpy as np
import pytest
import torch

from mim_plugins import masking


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def layout(sizes) -> torch.Tensor:
    """Part ids (L,) with part p repeated sizes[p] times, then shuffled in space (fixed seed)."""
    ids = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return ids[torch.randperm(len(ids), generator=gen(123))]


def per_part(mask: torch.Tensor, ids: torch.Tensor, num_parts: int) -> torch.Tensor:
    """Masked patches per part, (B, num_parts), counted independently of the implementation."""
    ids = ids.expand_as(mask)
    return torch.stack([(mask & (ids == p)).sum(1) for p in range(num_parts)], 1)


def reference_counts(sizes, ratio, lam, order):
    """Plain-Python SemMAE counts as the official code computes them: float32 (numpy scalars),
    round halves to even (Python's round), inter budget ``L·r`` truncated per part."""
    f32 = np.float32
    c1 = [round(float(f32(n) * f32(ratio))) for n in sizes]
    c2, before = [0] * len(sizes), 0
    for p in order:
        c2[p] = min(sizes[p], max(0, int(f32(sum(sizes) * ratio) - f32(before))))
        before += sizes[p]
    return [round(float(f32(lam) * f32(a) + f32(1 - lam) * f32(b))) for a, b in zip(c1, c2)]


# Hand-computed for sizes (6, 4, 3, 2, 1), L=16, r=0.75: fixed total 16 - int(4.0) = 12.
# c1 = round(4.5, 3, 2.25, 1.5, 0.75) = (4, 3, 2, 2, 1), halves to even (half-up: 5 for 4.5).
# Order (2, 0, 4, 1, 3), budget 12: part2 3, part0 6, part4 1, part1 gets the remaining 2, part3 0.
SIZES, ORDER = [6, 4, 3, 2, 1], [2, 0, 4, 1, 3]


@pytest.mark.parametrize('lam, expected', [
    (1.0, [4, 3, 2, 2, 1]),
    (0.0, [6, 2, 3, 0, 1]),
    (0.5, [5, 2, 2, 1, 1]),   # (5, 2.5, 2.5, 1, 1): two exact halves, both rounded to even
    (0.25, [6, 2, 3, 0, 1]),  # (5.5, 2.25, 2.75, 0.5, 1): 5.5 -> 6, 0.5 -> 0
    (0.75, [4, 3, 2, 2, 1]),  # (4.5, 2.75, 2.25, 1.5, 1)
])
def test_part_mask_counts_hand_computed(lam, expected):
    counts = masking.part_mask_counts(torch.tensor(SIZES), 0.75, lam, torch.tensor(ORDER))
    assert counts.dtype == torch.int64 and counts.shape == (5,)
    assert counts.tolist() == expected


def test_part_mask_counts_inter_takes_whole_parts_in_order():
    counts = masking.part_mask_counts(torch.tensor([28] * 7), 0.75, 0.0,
                                      torch.tensor([6, 1, 4, 0, 2, 3, 5]))
    # Budget 147 = 5 whole parts (140) + 7 patches of the sixth part in the order (part 3).
    assert counts.tolist() == [28, 28, 28, 7, 28, 0, 28]
    # A fractional budget is truncated per part: 117.6 = 4 whole parts + trunc(5.6) = 117, one
    # short of the fixed total 118 (semantic_part_mask fills it).
    counts = masking.part_mask_counts(torch.tensor([28] * 7), 0.6, 0.0, torch.arange(7))
    assert counts.tolist() == [28, 28, 28, 28, 5, 0, 0] and masking.num_masked(196, 0.6) == 118


def test_part_mask_counts_match_reference_on_random_layouts():
    g = gen(0)
    for trial in range(300):
        k = int(torch.randint(1, 9, (1,), generator=g))
        sizes = torch.randint(0, 40, (4, k), generator=g)
        sizes[:, 0] += 1 + 196 - sizes.sum(1).clamp(max=195)  # rows of equal length, >= 1 patch
        order = torch.rand(4, k, generator=g).argsort(1)
        ratio = [0.5, 0.75, 0.9, 0.6][trial % 4]
        lam = [0.0, 1.0, 0.5, 0.3, 0.85][trial % 5]
        counts = masking.part_mask_counts(sizes, ratio, lam, order)
        for row in range(4):
            assert counts[row].tolist() == reference_counts(
                sizes[row].tolist(), ratio, lam, order[row].tolist())
        assert ((counts >= 0) & (counts <= sizes)).all()


def test_num_masked():
    assert masking.num_masked(196, 0.75) == 147
    assert masking.num_masked(196, 0.5) == 98
    assert masking.num_masked(196, 0.9) == 177  # int(19.6) = 19 visible
    assert masking.num_masked(10, 0.55) == 6    # int(4.5) = 4 visible: the fraction is masked


@pytest.mark.parametrize('ratio', [0.5, 0.75, 0.9])
@pytest.mark.parametrize('lam', [0.0, 0.2, 0.5, 0.77, 1.0])
def test_semantic_mask_total_is_exact(ratio, lam):
    g = gen(int(ratio * 100) + int(lam * 1000))
    # 7 parts drawn unevenly per image, so parts are often absent or tiny.
    weights = torch.rand(64, 7, generator=g) ** 3
    ids = torch.multinomial(weights, 196, replacement=True, generator=g)
    mask = masking.semantic_part_mask(ids, ratio, lam, generator=g)
    assert mask.dtype == torch.bool and mask.shape == (64, 196)
    assert (mask.sum(1) == masking.num_masked(196, ratio)).all()


def test_intra_part_masks_each_part_by_ratio():
    ids = layout([28] * 7).expand(32, -1)
    mask = masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(1))
    assert (per_part(mask, ids, 7) == 21).all()  # round(28 * 0.75) each, 147 in all: no fix


def test_inter_part_masks_whole_parts_and_one_partial():
    sizes = [40, 36, 32, 28, 24, 20, 16]
    ids = layout(sizes).expand(200, -1)
    counts = per_part(masking.semantic_part_mask(ids, 0.75, 0.0, generator=gen(2)), ids, 7)
    full = counts == torch.tensor(sizes)
    partial = (counts > 0) & ~full
    assert (partial.sum(1) <= 1).all()
    assert (counts.sum(1) == 147).all()
    # Random order: every part is sometimes fully masked and sometimes untouched.
    assert full.any(0).all() and (counts == 0).any(0).all()


def contiguous(sizes) -> torch.Tensor:
    """Part ids (L,) with each part one run of patches: a fix that picks patches by position
    (instead of at random) would always hit the same part here."""
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))


def test_intra_counts_rounded_then_fixed_by_dropping_random_selected():
    ids = contiguous([5, 5, 5, 1]).expand(3000, -1)  # lam=1 selects (4, 4, 4, 1) = 13, total 12
    counts = per_part(masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(3)), ids, 4)
    c1 = torch.tensor([4, 4, 4, 1])
    assert (counts.sum(1) == 12).all() and ((c1 - counts).sum(1) == 1).all()
    assert (counts <= c1).all()
    # The patch left visible is uniform over the 13 selected ones: part p with chance c1_p / 13.
    dropped = (c1 - counts).double().mean(0)
    assert (dropped - c1 / 13).abs().max() < 0.04


def test_deficit_is_filled_from_unselected_patches():
    ids = contiguous([3, 3, 3, 3, 3, 1]).expand(3000, -1)  # lam=1 selects 5 * 2 + 1 = 11 of 12
    counts = per_part(masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(4)), ids, 6)
    c1 = torch.tensor([2, 2, 2, 2, 2, 1])
    assert (counts.sum(1) == 12).all() and (counts >= c1).all()
    # The filler is uniform over the 5 unselected patches, one in each of parts 0-4.
    filled = (counts - c1).double().mean(0)
    assert (filled[:5] - 0.2).abs().max() < 0.04 and filled[5] == 0


@pytest.mark.parametrize('lam', [0.3, 0.5, 0.8])
def test_in_between_counts_match_some_shuffled_order(lam):
    sizes = torch.tensor([40, 36, 32, 28, 24, 20, 16])
    ids = layout(sizes.tolist()).expand(16, -1)
    counts = per_part(masking.semantic_part_mask(ids, 0.75, lam, generator=gen(5)), ids, 7)
    orders = torch.tensor(list(itertools.permutations(range(7))))
    expected = masking.part_mask_counts(sizes.expand(len(orders), -1), 0.75, lam, orders)
    for row in counts:
        # The fixed-total step moves counts in one direction only: down if too many were chosen.
        too_many = expected.sum(1) >= 147
        fits = torch.where(too_many, (row <= expected).all(1), (row >= expected).all(1))
        assert fits.any()


def test_patches_inside_a_part_are_random():
    ids = layout([28] * 7).expand(2000, -1)
    mask = masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(6))
    freq = mask.double().mean(0)  # each patch: 21 of 28 in its part -> 0.75
    assert (freq - 0.75).abs().max() < 0.06


def test_seeded_generator_reproduces_and_seeds_differ():
    ids = layout([40, 36, 32, 28, 24, 20, 16]).expand(8, -1)
    a = masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(7))
    b = masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(7))
    c = masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Without the rounding fix in play (7 equal parts) the counts per part match across seeds.
    eq = layout([28] * 7)
    d, e = (masking.semantic_part_mask(eq, 0.75, 1.0, generator=gen(s)) for s in (9, 10))
    assert torch.equal(per_part(d, eq, 7), per_part(e, eq, 7)) and not torch.equal(d, e)


def test_one_dim_input_and_sparse_part_ids():
    ids = torch.tensor([3, 3, 3, 3, 42, 42, 42, 42, 7, 7, 7, 7, 7, 7, 7, 7], dtype=torch.int32)
    mask = masking.semantic_part_mask(ids, 0.5, 1.0, generator=gen(11))
    assert mask.shape == (1, 16)
    assert [int(mask[0, ids == p].sum()) for p in (3, 42, 7)] == [2, 2, 4]


def test_parts_absent_from_some_images_of_a_batch():
    ids = torch.stack([torch.tensor([0] * 8 + [1] * 8), torch.tensor([2] * 4 + [5] * 12)])
    mask = masking.semantic_part_mask(ids, 0.75, 1.0, generator=gen(12))
    assert [int(mask[0, :8].sum()), int(mask[0, 8:].sum())] == [6, 6]
    assert [int(mask[1, :4].sum()), int(mask[1, 4:].sum())] == [3, 9]


def test_random_mask():
    mask = masking.random_mask(500, 196, 0.75, generator=gen(13))
    assert mask.dtype == torch.bool and mask.shape == (500, 196)
    assert (mask.sum(1) == 147).all()
    assert (mask.double().mean(0) - 0.75).abs().max() < 0.08
    assert torch.equal(mask, masking.random_mask(500, 196, 0.75, generator=gen(13)))
    assert not torch.equal(mask[0], mask[1])


def test_mask_to_indices_partitions_the_patches():
    mask = masking.semantic_part_mask(layout([40, 36, 32, 28, 24, 20, 16]).expand(6, -1),
                                      0.75, 0.4, generator=gen(14))
    keep, masked = masking.mask_to_indices(mask)
    assert keep.shape == (6, 49) and masked.shape == (6, 147)
    for row in range(6):
        assert sorted(keep[row].tolist() + masked[row].tolist()) == list(range(196))
        assert keep[row].tolist() == sorted(keep[row].tolist())
    assert not mask.gather(1, keep).any() and mask.gather(1, masked).all()
    restore = torch.cat([keep, masked], 1).argsort(1)
    tokens = torch.arange(196).expand(6, -1)
    assert torch.equal(torch.cat([keep, masked], 1).gather(1, restore), tokens)
    with pytest.raises(ValueError, match='same number'):
        masking.mask_to_indices(torch.tensor([[True, False], [True, True]]))


def test_lambda_schedule():
    assert masking.lambda_schedule(0, 800) == pytest.approx(1 - (1 / 800) ** 2)
    assert masking.lambda_schedule(399, 800) == pytest.approx(0.75)
    assert masking.lambda_schedule(0, 4, 'linear') == pytest.approx(0.75)
    assert masking.lambda_schedule(1, 4, 'cosine') == pytest.approx(0.5)
    for kind in ('square', 'linear', 'cosine'):
        assert masking.lambda_schedule(799, 800, kind) == pytest.approx(0.0, abs=1e-12)
        assert masking.lambda_schedule(900, 800, kind) == 0.0  # clamped past the end
    assert masking.lambda_schedule(5, 10, 'constant', value=0.3) == 0.3
    assert masking.lambda_schedule(5, 10, 'constant', value=1.7) == 1.0
    with pytest.raises(ValueError, match="valid kinds: .*'square'.*'constant'"):
        masking.lambda_schedule(0, 10, 'exp')
    with pytest.raises(ValueError, match='max_epochs'):
        masking.lambda_schedule(0, 0)


@pytest.mark.parametrize('ratio', [0.0, 1.0, -0.1, 1.5, float('nan')])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match=r'mask_ratio must lie in the open interval \(0, 1\)'):
        masking.semantic_part_mask(torch.zeros(16, dtype=torch.long), ratio, 0.5)
    with pytest.raises(ValueError, match='mask_ratio'):
        masking.random_mask(2, 16, ratio)


def test_bad_part_ids_and_lambda():
    with pytest.raises(TypeError, match='integer tensor, got dtype torch.float32'):
        masking.semantic_part_mask(torch.zeros(16), 0.75, 0.5)
    with pytest.raises(TypeError, match='integer tensor'):
        masking.semantic_part_mask(torch.zeros(16, dtype=torch.bool), 0.75, 0.5)
    with pytest.raises(ValueError, match=r'shape \(L,\) or \(B, L\), got \(2, 4, 4\)'):
        masking.semantic_part_mask(torch.zeros(2, 4, 4, dtype=torch.long), 0.75, 0.5)
    with pytest.raises(ValueError, match='non-negative'):
        masking.semantic_part_mask(torch.tensor([0, -1, 2, 2]), 0.5, 0.5)
    with pytest.raises(ValueError, match=r'lam must lie in \[0, 1\]'):
        masking.semantic_part_mask(torch.zeros(16, dtype=torch.long), 0.75, 1.5)
    with pytest.raises(ValueError, match='no visible patch'):
        masking.semantic_part_mask(torch.zeros(4, dtype=torch.long), 0.9, 0.5)


# ---- block masks (BEiT-style, exact counts) ------------------------------------------------------
def boundary(mask: torch.Tensor) -> int:
    """Masked/visible neighbour pairs in (B, 14, 14) grids: few for blocks, many if scattered."""
    grid = mask.view(-1, 14, 14)
    return int((grid[:, 1:] != grid[:, :-1]).sum() + (grid[:, :, 1:] != grid[:, :, :-1]).sum())


@pytest.mark.parametrize('ratio', [0.4, 0.6, 0.75])
def test_block_mask_exact_count_in_blocks(ratio):
    mask = masking.block_mask(16, (14, 14), ratio, generator=gen(0))
    assert mask.dtype == torch.bool and mask.shape == (16, 196)
    assert (mask.sum(1) == masking.num_masked(196, ratio)).all()
    # blocks, not scattered patches: a much shorter masked/visible boundary than a random mask's
    assert boundary(mask) * 2 < boundary(masking.random_mask(16, 196, ratio, generator=gen(0)))


def test_block_mask_is_reproducible_and_checks_its_arguments():
    a = masking.block_mask(4, (14, 14), 0.4, generator=gen(5))
    assert torch.equal(a, masking.block_mask(4, (14, 14), 0.4, generator=gen(5)))
    assert not torch.equal(a, masking.block_mask(4, (14, 14), 0.4, generator=gen(6)))
    # a grid too small for min_block still gets its exact count
    small = masking.block_mask(3, (3, 3), 0.5, min_block=16)
    assert (small.sum(1) == masking.num_masked(9, 0.5)).all()
    with pytest.raises(ValueError, match='min_aspect'):
        masking.block_mask(1, (14, 14), 0.4, min_aspect=0)
    with pytest.raises(ValueError, match='mask_ratio'):
        masking.block_mask(1, (14, 14), 1.0)
