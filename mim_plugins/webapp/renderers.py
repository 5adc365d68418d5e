"""What a pretraining algorithm predicts, drawn as an image for the web demo.

:func:`render` calls the algorithm's own ``reconstruct(inputs, mask, input_mask)`` (e.g.
:class:`~mim_plugins.models.masked_mae.MaskedMAE`, ``MaskedMaskFeat``, ``MaskedBEiT``; stock
mmpretrain configs are built as those by :func:`~mim_plugins.visualization.loading.
masked_algorithm`) and draws what it returns, chosen by its keys (:data:`DRAWERS`):

* ``pixels`` ``(1, 3, H, W)``: the predicted image (MAE family), against the input;
* ``hog`` and ``target`` ``(1, L, D)``: predicted and target HOG (MaskFeat), line drawings;
* ``tokens`` ``(1, L)``: predicted DALL-E token ids (BEiT), one colour per id, against the
  tokenizer's tokens of BEiT's second view.

``where`` ``(1, L)`` bool says which patches hold a prediction; the others are drawn gray (the
bottleneck models and BEiT predict only the predicted patches). ``Rendered.reference`` is the
same kind of picture computed from the input itself; the demo pastes it on the visible
patches. A new algorithm needs a ``reconstruct`` returning one of these keys (or a drawer here
for a new key), never a change to the demo.
"""
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..models.sample_masks import consumed_fields
from ..utils.errors import UserInputError
from ..visualization.attention import patch_grid
from ..visualization.loading import denormalise, need_reconstruct, normalise_second_view
from ..visualization.part_masks import masked_image


class Rendered(NamedTuple):
    prediction: np.ndarray  # (H, W, 3) uint8
    reference: np.ndarray  # (H, W, 3) uint8
    what: str  # what the images show, for the demo's notes
    note: str = ''  # anything else the demo should say about them


Drawer = Callable[[nn.Module, Tensor, Dict[str, Tensor]], Rendered]


def gray_outside(picture: np.ndarray, keep: Tensor, grid: Tuple[int, int]) -> np.ndarray:
    """A copy of ``picture`` (H, W, 3) uint8 with every patch not in ``keep`` (L,) bool painted
    ``MASK_GRAY``: where the model predicts nothing."""
    return masked_image(picture, ~keep.view(grid).numpy())


def where_note(where: Tensor) -> str:
    """How much of the grid ``where`` (L,) bool covers, for ``Rendered.what``."""
    if bool(where.all()):
        return 'of every patch'
    return ('of the predicted patches only (this model predicts nothing at the others); gray '
            'elsewhere')


@torch.no_grad()
def draw_pixels(model: nn.Module, inputs: Tensor, out: Dict[str, Tensor]) -> Rendered:
    """``pixels`` (1, 3, H, W), normalised as ``inputs``, against the input."""
    pre, where = model.data_preprocessor, out['where'][0]
    picture = denormalise(pre, out['pixels'])[0].numpy()
    return Rendered(gray_outside(picture, where, patch_grid(model.backbone)),
                    denormalise(pre, inputs)[0].numpy(), 'pixels ' + where_note(where))


def unpatch_hog(feats: Tensor, grid: Tuple[int, int], nbins: int) -> Tensor:
    """Inverse of ``HOGGenerator._reshape``: (B, L, 3·nbins·u²) per-patch HOG (u x u cells per
    patch) -> (B, 3, nbins, h·u, w·u) per-cell histograms, the layout ``generate_hog_image``
    draws."""
    batch, _, dims = feats.shape
    h, w = grid
    u = int(round((dims // (3 * nbins)) ** 0.5))
    cells = feats.reshape(batch, h, w, 3 * nbins, u, u).permute(0, 3, 1, 4, 2, 5)
    return cells.reshape(batch, 3, nbins, h * u, w * u)


def hog_picture(generator: nn.Module, feats: Tensor, grid: Tuple[int, int]) -> np.ndarray:
    """(1, L, D) HOG features -> (H, W, 3) uint8 line drawing by mmpretrain's
    ``HOGGenerator.generate_hog_image`` (each picture scaled to its own strongest bin)."""
    cells = unpatch_hog(feats, grid, generator.nbins).float()
    picture = generator.generate_hog_image(cells)
    gray = np.clip(picture, 0, 255).round().astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


@torch.no_grad()
def draw_hog(model: nn.Module, inputs: Tensor, out: Dict[str, Tensor]) -> Rendered:
    """Predicted ``hog`` against the ``target`` HOG (1, L, D), drawn by the model's
    ``HOGGenerator`` (sized by the forward ``reconstruct`` ran on ``inputs``)."""
    grid, where = patch_grid(model.backbone), out['where'][0]
    generator = model.target_generator
    # rows without a prediction are left out, so the picture's scale is the predicted ones'
    pred = out['hog'] * where[None, :, None]
    return Rendered(gray_outside(hog_picture(generator, pred, grid), where, grid),
                    hog_picture(generator, out['target'], grid),
                    'HOG features ' + where_note(where))


def token_colours(ids: np.ndarray) -> np.ndarray:
    """Token ids (any shape, < 2³²) -> uint8 RGB (..., 3): one fixed colour per id, the same
    in every image and run. Hue, saturation and value come from three multiplicative hashes of
    the id; saturation stays >= 0.55, so no token is drawn in the gray of hidden patches."""
    from matplotlib.colors import hsv_to_rgb

    x = np.asarray(ids).astype(np.uint64)

    def unit(factor: int) -> np.ndarray:  # a hash of x, spread over [0, 1)
        return ((x * np.uint64(factor)) % np.uint64(2**32)).astype(np.float64) / 2**32

    hsv = np.stack([unit(2654435761), 0.55 + 0.45 * unit(2246822519),
                    0.6 + 0.4 * unit(3266489917)], -1)
    return (hsv_to_rgb(hsv) * 255).round().astype(np.uint8)


def token_picture(ids: Tensor, grid: Tuple[int, int], size: Tuple[int, int]) -> np.ndarray:
    """(L,) token ids on the (h, w) grid -> (H, W, 3) uint8, one flat colour per patch."""
    (h, w), (height, width) = grid, size
    colours = token_colours(ids.view(h, w).numpy())
    return colours.repeat(height // h, 0).repeat(width // w, 1)


def tokenizer_view(model: nn.Module, inputs: Tensor, grid: Tuple[int, int]) -> Tensor:
    """The tokenizer's input for ``inputs`` (1, 3, H, W): BEiT's second view, the image resized
    (Lanczos, as ``RandomResizedCropAndInterpolationWithTwoPic`` with BEiT's
    ``second_interpolation``) to the grid times the tokenizer's stride (DALL-E: 8, 14 -> 112),
    normalised with the data preprocessor's ``second_mean`` / ``second_std``."""
    import mmcv

    pre = model.data_preprocessor
    stride = 2**sum(isinstance(m, nn.MaxPool2d) for m in model.target_generator.modules())
    rgb = denormalise(pre, inputs)[0].numpy()
    small = mmcv.imresize(rgb, (grid[1] * stride, grid[0] * stride), interpolation='lanczos')
    return normalise_second_view(pre, torch.from_numpy(small[None]))


def tokenizer_note(generator: nn.Module) -> str:
    """Where the DALL-E tokenizer's weights come from (set by ``load_model``)."""
    source = getattr(generator, 'weights_from', 'checkpoint')
    wanted = getattr(generator, 'wanted_file', '') or 'dalle_encoder.pth'
    if source == 'checkpoint':
        return ('Its weights come from the checkpoint: the real DALL-E tokenizer only if '
                'training loaded dalle_encoder.pth (a run whose tokenizer init was dropped, as '
                'the tests do, saved a randomly initialised one).')
    if source:
        return f'Its weights were read from {source}.'
    why = ('the config names a URL and nothing is downloaded' if '://' in wanted
           else f'{wanted} does not exist')
    return (f'The checkpoint has no tokenizer weights and {why}, so the tokenizer is RANDOMLY '
            'initialised and the reference tokens mean nothing. Fix: put OpenMMLab\'s '
            'dalle_encoder.pth there (configs/beit/README.md).')


@torch.no_grad()
def draw_tokens(model: nn.Module, inputs: Tensor, out: Dict[str, Tensor]) -> Rendered:
    """Predicted token ids ``tokens`` (1, L) against the argmax of the model's tokenizer on
    BEiT's second view of ``inputs`` (the loss's target), one colour per id."""
    grid, where = patch_grid(model.backbone), out['where'][0]
    pred_ids = out['tokens'][0]
    view = tokenizer_view(model, inputs, grid)
    target_ids = model.target_generator(view).argmax(1).flatten()  # (L,)
    size = tuple(inputs.shape[-2:])
    same = int((pred_ids == target_ids)[where].sum())
    note = (f'Reference: the tokenizer\'s DALL-E tokens of a {view.shape[-2]}x{view.shape[-1]} '
            f'second view; {same} of {int(where.sum())} predicted tokens equal them. '
            + tokenizer_note(model.target_generator))
    return Rendered(gray_outside(token_picture(pred_ids, grid, size), where, grid),
                    token_picture(target_ids, grid, size),
                    'DALL-E token ids (argmax of the head, one colour per id) '
                    + where_note(where), note)


# What reconstruct returned -> how to draw it; the first key found wins.
DRAWERS: Dict[str, Drawer] = {'pixels': draw_pixels, 'hog': draw_hog, 'tokens': draw_tokens}


def takes_separate_masks(model: nn.Module) -> bool:
    """Whether the algorithm reads ``input_mask`` (the patches hidden from the encoder) apart
    from ``mask`` (the predicted ones)."""
    return 'input_mask' in (consumed_fields(model) or ())


@torch.no_grad()
def render(model: nn.Module, inputs: Tensor, hidden: Tensor, predicted: Tensor) -> Rendered:
    """Draw ``model.reconstruct`` on one image.

    Args:
        model: an algorithm with ``reconstruct`` (else ``UserInputError`` naming the fix).
        inputs: (1, 3, H, W) the image normalised by the model's data preprocessor.
        hidden: bool (L,) patches removed from the encoder input.
        predicted: bool (L,) patches whose prediction is shown; equal to ``hidden`` unless the
            masks are separate, which only an algorithm that reads ``input_mask`` accepts.
    """
    need_reconstruct(model, 'The demo')
    name = type(model).__name__
    input_mask: Optional[Tensor] = None
    if not torch.equal(hidden, predicted):
        if not takes_separate_masks(model):
            raise UserInputError(
                f'{name} (backbone {type(model.backbone).__name__}) hides exactly the patches '
                'it predicts, so it cannot take separate masks. Fix: choose another masking '
                'strategy, or a checkpoint whose encoder takes separate masks (the MAE family, '
                'or BEiT / MaskFeat with the SemanticMIM bottleneck).')
        input_mask = hidden[None]
    out = model.reconstruct(inputs, predicted[None], input_mask)
    for key, draw in DRAWERS.items():
        if key in out:
            return draw(model, inputs, out)
    raise UserInputError(
        f'{name}.reconstruct returned {", ".join(sorted(out))}; the demo draws '
        f'{", ".join(DRAWERS)}. Fix: return one of those, or add a drawer for the new kind to '
        'DRAWERS in mim_plugins/webapp/renderers.py.')
