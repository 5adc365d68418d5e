"""What each pretraining method predicts, drawn as an image: one function per model type.

``RENDERERS`` maps a model class name (``cfg.model.type``) to a function
``render(model, inputs, hidden, predicted) -> Rendered``:

* ``inputs``: (1, 3, H, W) the image normalised by the model's data preprocessor;
* ``hidden``: bool (L,) patches removed from the encoder input; ``predicted``: bool (L,)
  patches whose prediction is shown (the same mask unless masks are separate).

``Rendered.prediction`` is the model's output over the grid (MAE, MaskFeat: every patch; the
bottleneck models and BEiT: the predicted patches, gray elsewhere) and ``Rendered.reference``
the same kind of image computed from the input itself (the pixels for MAE, the HOG target
for MaskFeat, the tokenizer's DALL-E tokens for BEiT); the demo pastes the reference on the
visible patches. A new method is one decorated function here.
"""
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, NamedTuple, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..masking import mask_to_indices
from ..utils.errors import UserInputError
from ..visualization.loading import denormalise, normalise_second_view
from ..visualization.part_masks import MASK_GRAY
from ..visualization.reconstruction import mae_reconstruct


class Rendered(NamedTuple):
    prediction: np.ndarray  # (H, W, 3) uint8
    reference: np.ndarray  # (H, W, 3) uint8
    what: str  # what the images show, for the demo's notes
    note: str = ''  # anything else the demo should say about them


Renderer = Callable[[nn.Module, Tensor, Tensor, Tensor], Rendered]
RENDERERS: Dict[str, Renderer] = {}


def register(*model_types: str) -> Callable[[Renderer], Renderer]:
    """Decorator: ``render`` draws the predictions of every model type named."""
    def add(render: Renderer) -> Renderer:
        for name in model_types:
            RENDERERS[name] = render
        return render
    return add


def renderer_for(model: nn.Module) -> Renderer:
    """The render function of ``model``'s type, or a ``UserInputError`` naming those known."""
    name = type(model).__name__
    if name not in RENDERERS:
        raise UserInputError(
            f'The demo cannot show a {name} model: it draws {", ".join(sorted(RENDERERS))} '
            'pretraining checkpoints. Fix: choose a pretraining config and its checkpoint (not '
            'a fine-tuned classifier), or add a render function to mim_plugins/webapp/'
            'renderers.py.')
    return RENDERERS[name]


@contextmanager
def given_mask(backbone: nn.Module, mask: Tensor) -> Iterator[None]:
    """Make an ``MAEViT`` (or subclass) mask exactly ``mask`` (B, L) bool, True = hidden,
    instead of drawing a random mask: its ``forward`` calls ``self.random_masking``, which
    this instance attribute shadows for the duration."""
    def masking(x: Tensor, mask_ratio: float = 0.) -> Tuple[Tensor, Tensor, Tensor]:
        ids_keep, ids_hidden = mask_to_indices(mask)
        visible = x.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return visible, mask.float(), torch.cat([ids_keep, ids_hidden], 1).argsort(1)

    backbone.random_masking = masking
    try:
        yield
    finally:
        del backbone.random_masking


@register('MAE', 'SupMAE', 'SemMAE')
@torch.no_grad()
def render_pixels(model: nn.Module, inputs: Tensor, hidden: Tensor,
                  predicted: Tensor) -> Rendered:
    """MAE family: the pixel decoder's output for every patch (norm_pix predictions restored
    with each original patch's mean and variance, see ``mae_reconstruct``)."""
    with given_mask(model.backbone, hidden[None]):
        out = mae_reconstruct(model, inputs)
    pre = model.data_preprocessor
    return Rendered(denormalise(pre, out['reconstruction'])[0].numpy(),
                    denormalise(pre, inputs)[0].numpy(), 'pixels of every patch')


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


def maskfeat_predictions(model: nn.Module, latent: Tensor) -> Tensor:
    """MaskFeat's neck on the backbone output ``latent`` (B, 1 + L, C) -> (B, L, D) HOG
    predictions (the cls row dropped), as ``MaskFeat.loss`` computes them."""
    batch, tokens, dims = latent.shape
    pred = model.neck((latent.reshape(batch * tokens, dims), ))[0].view(batch, tokens, -1)
    return pred[:, 1:]


@register('MaskFeat')
@torch.no_grad()
def render_hog(model: nn.Module, inputs: Tensor, hidden: Tensor, predicted: Tensor) -> Rendered:
    """MaskFeat: the predicted HOG of every patch, against the HOG target of the input."""
    grid = tuple(model.backbone.patch_resolution)
    latent = model.backbone(inputs, hidden[None])  # (1, 1 + L, C), hidden patches = mask token
    pred = maskfeat_predictions(model, latent)
    target = model.target_generator(inputs)  # (1, L, D); also sets the picture's size
    generator = model.target_generator
    return Rendered(hog_picture(generator, pred, grid),
                    hog_picture(generator, target, grid), 'HOG features of every patch')


# ---- SemanticMIM's bottleneck models: predictions exist at the predicted patches only ----------
PREDICTED_ONLY = ('of the predicted patches only (the bottleneck\'s mask tokens exist only '
                  'there); gray elsewhere')


def gray_outside(picture: np.ndarray, keep: Tensor, grid: Tuple[int, int]) -> np.ndarray:
    """A copy of ``picture`` (H, W, 3) uint8 with every patch not in ``keep`` (L,) bool painted
    ``MASK_GRAY``: where the model predicts nothing. H, W are multiples of the (h, w) grid."""
    (h, w), (height, width) = grid, picture.shape[:2]
    cells = keep.view(h, w).numpy().repeat(height // h, 0).repeat(width // w, 1)
    out = picture.copy()
    out[~cells] = MASK_GRAY
    return out


@contextmanager
def separate_input_mask(backbone: nn.Module, hidden: Tensor) -> Iterator[None]:
    """Hide ``hidden`` (B, L) bool from a bottleneck backbone's main stream for the duration,
    as ``SeparateMaskMixin.loss`` does with ``data_sample.input_mask``; its forward's ``mask``
    then only says which patches are predicted."""
    backbone.input_mask = hidden
    try:
        yield
    finally:
        backbone.input_mask = None


def restore_patch_stats(head: nn.Module, pred: Tensor, inputs: Tensor) -> Tensor:
    """``norm_pix`` predictions (B, L, p²·3), each patch normalised by its own mean/variance,
    back in the input's space with the original patch statistics (see ``mae_reconstruct``)."""
    if not getattr(head, 'norm_pix', False):
        return pred
    target = head.patchify(inputs)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    return pred * (var + 1.e-6)**.5 + mean


@register('BottleneckMAE')
@torch.no_grad()
def render_bottleneck_pixels(model: nn.Module, inputs: Tensor, hidden: Tensor,
                             predicted: Tensor) -> Rendered:
    """MAE with the bottleneck decoder: the encoder sees the visible patches; the decoder
    predicts the pixels of the predicted patches from the encoder's cls token(s) only."""
    latent = model.backbone(inputs, hidden[None])  # (1, N + V, C)
    pred = model.neck(latent[:, :model.backbone.num_cls_tokens], predicted[None])  # (1, L, ·)
    pixels = model.head.unpatchify(restore_patch_stats(model.head, pred, inputs))
    pre = model.data_preprocessor
    grid = tuple(model.backbone.patch_resolution)
    return Rendered(gray_outside(denormalise(pre, pixels)[0].numpy(), predicted, grid),
                    denormalise(pre, inputs)[0].numpy(), 'pixels ' + PREDICTED_ONLY)


@register('BottleneckMaskFeat')
@torch.no_grad()
def render_bottleneck_hog(model: nn.Module, inputs: Tensor, hidden: Tensor,
                          predicted: Tensor) -> Rendered:
    """MaskFeat with the bottleneck: the predicted HOG of the predicted patches (the twin
    stack's output), against the HOG target of the input."""
    backbone = model.backbone
    grid = tuple(backbone.patch_resolution)
    with separate_input_mask(backbone, hidden[None]):
        latent = backbone(inputs, predicted[None])  # (1, 1 + L, C)
    # rows of unpredicted patches are left out, so the picture's scale is the predicted ones'
    pred = maskfeat_predictions(model, latent) * predicted[None, :, None]
    generator = model.target_generator
    target = generator(inputs)  # (1, L, D); also sets the picture's size
    return Rendered(gray_outside(hog_picture(generator, pred, grid), predicted, grid),
                    hog_picture(generator, target, grid), 'HOG features ' + PREDICTED_ONLY)


# ---- BEiT: DALL-E token ids ----------------------------------------------------------------------
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


@register('BEiT', 'BottleneckBEiT')
@torch.no_grad()
def render_tokens(model: nn.Module, inputs: Tensor, hidden: Tensor,
                  predicted: Tensor) -> Rendered:
    """BEiT (v1) and BEiT with the bottleneck predict a DALL-E token id per predicted patch:
    the argmax of ``head.cls_head`` on the backbone's patch outputs, against the argmax of the
    tokenizer on the second view (the target), drawn one colour per id."""
    backbone = model.backbone
    grid = tuple(backbone.patch_resolution)
    if hasattr(backbone, 'bottleneck_layers'):  # two streams: hidden and predicted may differ
        with separate_input_mask(backbone, hidden[None]):
            latent = backbone(inputs, predicted[None])[0]  # (1, 1 + L, C)
    else:  # stock BEiT: mask tokens at the hidden patches, which are the predicted ones
        latent = backbone(inputs, hidden[None])[0]
    pred_ids = model.head.cls_head(latent[0, 1:]).argmax(-1)  # (L,)
    view = tokenizer_view(model, inputs, grid)
    target_ids = model.target_generator(view).argmax(1).flatten()  # (L,)
    size = tuple(inputs.shape[-2:])
    same = int((pred_ids == target_ids)[predicted].sum())
    note = (f'Reference: the tokenizer\'s DALL-E tokens of a {view.shape[-2]}x{view.shape[-1]} '
            f'second view; {same} of {int(predicted.sum())} predicted tokens equal them. '
            + tokenizer_note(model.target_generator))
    return Rendered(gray_outside(token_picture(pred_ids, grid, size), predicted, grid),
                    token_picture(target_ids, grid, size),
                    'DALL-E token ids (argmax of the head, one colour per id) of the predicted '
                    'patches only (the loss\'s targets); gray elsewhere', note)
