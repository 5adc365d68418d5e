"""SupMAE against the official code's golden fixture, and SupMAE on a given mask."""
import copy

import pytest
import torch
from mmpretrain.structures import DataSample

from conftest import ROOT
from mim_plugins.fidelity import check
from mim_plugins.fidelity.common import FixtureError, load_fixture
from mim_plugins.fidelity.supmae import official_mask, run, to_official_order
from test_supmae import IMG, PATCH, replace_patches, tiny_supmae

FIXTURE = f'{ROOT}/tests/fixtures/official/supmae_tiny.pt'
LINES = ['loss_rec', 'pred', 'mask', 'latent', 'logits', 'loss_cls', 'loss_total',
         'grads (rel)', 'grads (who trains)', 'logits (train)', 'loss_cls (train)',
         'loss_total (train)', 'grads (train) (rel)', 'grads (train) (who trains)',
         'grads (train) (zero)']


@pytest.fixture(scope='module')
def fx():
    return load_fixture(FIXTURE)


def failing(lines):
    return {line.name for line in lines if not line.ok}


def test_every_line_matches_the_official_code(fx):
    lines = check(FIXTURE)
    assert [line.name for line in lines] == LINES
    assert failing(lines) == set(), '\n'.join(map(str, lines))
    assert 'ascending-noise' in next(line.note for line in lines if line.name == 'latent')


def test_a_changed_head_weight_or_output_fails(fx):
    changed = copy.deepcopy(fx)
    changed['state_dict']['cls_head.3.weight'][0, 0] += 0.5
    bad = failing(run(changed, 'changed'))
    assert {'logits', 'loss_cls', 'loss_total', 'logits (train)', 'grads (rel)'} <= bad
    assert not bad & {'loss_rec', 'pred', 'mask', 'latent'}  # the branch only

    shifted = copy.deepcopy(fx)
    shifted['outputs']['logits'] = shifted['outputs']['logits'] + 1e-4
    assert failing(run(shifted, 'shifted')) == {'logits'}


def test_bad_fixtures_are_named(fx):
    with pytest.raises(FixtureError, match="'x.pt'.*'semmae_counts'.*not a SupMAE fixture"):
        run(dict(fx, method='semmae_counts'), 'x.pt')
    lacking = dict(fx, outputs_train={})
    with pytest.raises(FixtureError, match=r"'x.pt' lacks \['outputs_train.logits'.*Fix"):
        run(lacking, 'x.pt')
    for option, value in (('mlp_depth', 3), ('in_chans', 1), ('norm_layer', 'nn.BatchNorm1d'),
                          ('drop_path', 0.1)):
        kwargs = dict(fx['official_kwargs'], **{option: value})
        with pytest.raises(FixtureError, match=option):
            run(dict(fx, official_kwargs=kwargs), 'x.pt')


def test_official_mask_keeps_the_lowest_noise_and_latent_reorders():
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.7, 0.1]])
    mask = official_mask(noise, 0.5)
    assert mask.tolist() == [[True, False, True, False], [False, True, True, False]]
    # ours: [cls, patch 1, patch 3] / [cls, patch 0, patch 3]; official: ascending noise
    latent = torch.tensor([[0., 1., 3.], [0., 0., 3.]]).unsqueeze(-1)
    assert to_official_order(latent, noise).squeeze(-1).tolist() == [[0, 1, 3], [0, 3, 0]]


def samples_with(masks, labels):
    grid = IMG // PATCH
    return [DataSample().set_gt_label(int(y)).set_mask(m.view(grid, grid))
            for m, y in zip(masks, labels)]


def test_a_given_mask_is_the_mask_supmae_uses():
    torch.manual_seed(0)
    model = tiny_supmae()
    length = (IMG // PATCH) ** 2
    x, labels = torch.randn(3, 3, IMG, IMG), [0, 1, 2]
    masks = official_mask(torch.rand(3, length), 0.75)
    seen = {}
    encode = model.backbone.encode
    model.backbone.encode = lambda *a: seen.update(backbone=encode(*a)) or seen['backbone']
    model.neck.register_forward_hook(lambda m, a, out: seen.update(pred=out))
    losses = model.loss(x, samples_with(masks, labels))
    latent, mask = seen['backbone'].main, seen['backbone'].hidden
    assert torch.equal(mask.bool(), masks) and latent.shape[1] == 1 + 4

    # the reconstruction loss is on exactly the given patches (independent computation)
    target = model.head.patchify(x)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6)**.5
    per_patch = ((seen['pred'] - target) ** 2).mean(-1)
    assert torch.allclose(losses['loss_rec'], per_patch[masks].mean(), rtol=1e-6, atol=0)

    # the encoder saw the unmasked patches only: new pixels in the given masked ones leave the
    # branch exactly as it was
    hidden = replace_patches(x, masks, torch.randn_like(x) * 5)
    again = model.loss(hidden, samples_with(masks, labels))
    assert torch.equal(again['loss_cls'], losses['loss_cls'])
    assert not torch.equal(again['loss_rec'], losses['loss_rec'])

    moved = masks.roll(1, dims=1)
    other = model.loss(x, samples_with(moved, labels))
    assert torch.equal(seen['backbone'].hidden, moved)
    assert not torch.equal(other['loss_rec'], losses['loss_rec'])
    assert not torch.equal(other['loss_cls'], losses['loss_cls'])
