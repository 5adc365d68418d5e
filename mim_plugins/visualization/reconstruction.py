"""Original / masked / reconstruction / reconstruction+visible figures for MAE-family models.

The figure draws what the algorithm's own ``reconstruct(inputs, mask, input_mask)`` returns
(``pixels`` and ``where``, see :class:`~mim_plugins.models.masked_mae.MaskedMAE`) on masks drawn
the way the config trains: by its ``MaskingDataPreprocessor``'s mask generator(s) (SemMAE's
part-guided masks, with the config's ``LoadPartMap`` part maps and the λ of the checkpoint's
epoch), else MAE's random masks at the backbone's ``mask_ratio``. Every draw comes from one
``torch.Generator`` seeded by the caller.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from torch import Tensor, nn

from ..datasets.part_maps import LoadPartMap
from ..models.mask_generators import MaskingDataPreprocessor, RandomMaskGenerator
from ..utils.errors import UserInputError
from .attention import patch_grid
from .images import save_grid
from .loading import denormalise, load_model, need_reconstruct, trained_epochs
from .part_masks import MASK_GRAY, masked_image

COLUMNS = ('original', 'masked', 'reconstruction', 'reconstruction + visible')


def compose(prediction: np.ndarray, reference: np.ndarray, hidden: np.ndarray,
            predicted: np.ndarray) -> np.ndarray:
    """The "reconstruction + visible" picture (H, W, 3) uint8: ``prediction`` on the predicted
    patches, ``reference`` on the other visible ones, gray on patches hidden and not predicted
    (only separate masks have those). Masks are (h, w) bool; H, W need not be multiples."""
    (height, width), grid = reference.shape[:2], hidden.shape
    cell = np.ix_(np.arange(height) * grid[0] // height, np.arange(width) * grid[1] // width)
    out = np.where(predicted[cell][..., None], prediction, reference)
    out[(hidden & ~predicted)[cell]] = MASK_GRAY
    return out


@torch.no_grad()
def reconstruction_columns(model: nn.Module, inputs: Tensor, mask: Tensor,
                           input_mask: Optional[Tensor] = None) -> Dict[str, np.ndarray]:
    """The figure's :data:`COLUMNS`, each ``(B, H, W, 3)`` uint8, for ``inputs`` ``(B, 3, H, W)``
    normalised by ``model.data_preprocessor`` and bool ``(B, L)`` masks: ``mask`` the predicted
    patches, ``input_mask`` those hidden from the encoder (default ``mask``).

    ``masked`` zeroes the hidden patches in the normalised space (the data set's mean colour);
    ``reconstruction`` is ``model.reconstruct``'s ``pixels``, gray where it predicts nothing
    (``where`` False: the bottleneck decoder predicts only the predicted patches).
    """
    need_reconstruct(model, 'The reconstruction figure')
    out = model.reconstruct(inputs, mask, input_mask)
    if 'pixels' not in out:
        raise UserInputError(
            f'The reconstruction figure draws pixels, but {type(model).__name__} predicts '
            f'{", ".join(sorted(k for k in out if k != "where"))}. Fix: use an MAE-family '
            'checkpoint, or the web demo (tools/web_demo.py), which draws HOG and tokens too.')
    grid = patch_grid(model.backbone)
    pre = model.data_preprocessor
    hidden = (mask if input_mask is None else input_mask).view(-1, *grid)
    predicted = mask.view(-1, *grid)
    where = out['where'].view(-1, *grid)
    size = inputs.shape[-2:]
    hidden_px = hidden.repeat_interleave(size[0] // grid[0], 1).repeat_interleave(
        size[1] // grid[1], 2)
    original = denormalise(pre, inputs).numpy()
    masked = denormalise(pre, inputs * ~hidden_px[:, None]).numpy()
    pixels = denormalise(pre, out['pixels']).numpy()
    recon = np.stack([masked_image(p, ~w.numpy()) for p, w in zip(pixels, where)])
    pasted = np.stack([compose(r, o, h.numpy(), (p & w).numpy()) for r, o, h, p, w in
                       zip(recon, original, hidden, predicted, where)])
    return dict(zip(COLUMNS, (original, masked, recon, pasted)))


def _find_transform(node: object, cls: type) -> Optional[dict]:
    """A copy of the first transform config that builds a ``cls`` anywhere in ``node`` (nested
    dicts and lists, e.g. ``train_dataloader``), or None."""
    from mmpretrain.registry import TRANSFORMS

    if isinstance(node, dict):
        kind = node.get('type')
        if kind is cls or (isinstance(kind, str) and TRANSFORMS.get(kind) is cls):
            return dict(node)
        children = node.values()
    elif isinstance(node, (list, tuple)):
        children = node
    else:
        return None
    for child in children:
        found = _find_transform(child, cls)
        if found is not None:
            return found
    return None


def read_part_ids(cfg: Config, image_paths: Sequence[str], grid: Tuple[int, int],
                  part_root: Optional[str] = None,
                  img_prefix: Optional[str] = None) -> Optional[Tensor]:
    """``(B, h, w)`` int64 part ids of the images, read by the config's train ``LoadPartMap``
    (its ``part_root`` / ``img_prefix`` replaced by the ones given); None when the config has
    no ``LoadPartMap`` and none are given. A missing map raises ``LoadPartMap``'s error."""
    from mmpretrain.registry import TRANSFORMS

    loader = _find_transform(cfg.get('train_dataloader'), LoadPartMap)
    if loader is None and part_root is None:
        return None
    loader = loader or dict(type='LoadPartMap', grid=grid[0], num_parts=256)
    loader.update({k: v for k, v in (('part_root', part_root), ('img_prefix', img_prefix))
                   if v is not None})
    transform = TRANSFORMS.build(loader)
    maps = [transform(dict(img_path=path))['part_ids'] for path in image_paths]
    return torch.from_numpy(np.stack(maps).astype(np.int64))


def config_masks(model: nn.Module, cfg: Config, checkpoint: str, part_ids: Optional[Tensor],
               batch: int, seed: int, epoch: Optional[int] = None
               ) -> Tuple[Tensor, Optional[Tensor], str]:
    """``(mask (B, L), input_mask (B, L) or None, a line saying how they were drawn)``.

    With a ``MaskingDataPreprocessor`` its generators draw them as in training, at 0-based
    ``epoch`` of ``train_cfg.max_epochs`` (default: the last epoch ``checkpoint`` trained, else
    the schedule's last), which sets SemMAE's λ; otherwise MAE's random mask at the
    backbone's ``mask_ratio``. One ``torch.Generator`` seeded with ``seed`` draws everything.
    """
    rng = torch.Generator().manual_seed(int(seed))
    pre = model.data_preprocessor
    grid = patch_grid(model.backbone)
    if not isinstance(pre, MaskingDataPreprocessor):
        ratio = model.backbone.mask_ratio
        mask = RandomMaskGenerator(ratio, grid)(batch, None, None, generator=rng)
        return mask.flatten(1), None, f'masks: random, ratio {ratio} (the encoder\'s), seed {seed}'
    max_epochs = (cfg.get('train_cfg') or {}).get('max_epochs')
    when = ''
    if max_epochs:
        if epoch is None:
            trained = trained_epochs(checkpoint)
            epoch = trained - 1 if trained else max_epochs - 1
        if not 0 <= epoch < max_epochs:
            raise UserInputError(f'Epoch {epoch} is outside the config\'s 0..{max_epochs - 1}. '
                                 'Fix: pass the 0-based epoch whose masks to draw (--epoch).')
        for generator in pre.generators:
            generator.set_epoch(epoch, max_epochs)
        when = f', epoch {epoch} of {max_epochs}'
    kinds = ' + '.join(type(g).__name__ for g in pre.generators)
    try:
        masks = [g(batch, part_ids, None, generator=rng) if g is not None else None
                 for g in (pre.mask_generator, pre.input_mask_generator)]
    except ValueError:
        if part_ids is not None:
            raise
        # without part ids, the generators' only ValueError: they draw from part maps
        raise UserInputError(
            f'The config masks with {kinds}, which needs part maps, but it has no LoadPartMap '
            'saying where they are. Fix: pass --part-root DIR --img-prefix DIR to '
            'vis_mae.py (LoadPartMap\'s part_root and img_prefix), or add LoadPartMap to the '
            "config's train pipeline.") from None
    lams = ' + '.join(type(g).__name__ + (f', λ={g.lam:.2f}' if hasattr(g, 'lam') else '')
                      for g in pre.generators)
    mask, input_mask = (m if m is None else m.flatten(1) for m in masks)
    return mask, input_mask, f'masks: {lams}{when}, seed {seed}'


def render_mae_reconstructions(config: str, checkpoint: str, image_paths: Sequence[str],
                               out_file: str, seed: int = 0, epoch: Optional[int] = None,
                               part_root: Optional[str] = None,
                               img_prefix: Optional[str] = None) -> str:
    """Load an MAE-family checkpoint with its config, mask ``image_paths`` as the config trains
    (see :func:`config_masks`; part maps by :func:`read_part_ids`) and save the original / masked
    / reconstruction / reconstruction+visible grid to ``out_file``, one row per image. Returns
    the line saying how the masks were drawn."""
    from mmengine.dataset import Compose, default_collate

    model, cfg = load_model(config, checkpoint)
    need_reconstruct(model, 'The reconstruction figure')
    size = model.backbone.patch_embed.init_input_size
    # the whole image, resized: part maps describe the whole image, not a crop of it
    pipeline = Compose([dict(type='LoadImageFromFile'),
                        dict(type='Resize', scale=(size[1], size[0]), backend='pillow'),
                        dict(type='PackInputs')])
    batch = [pipeline(dict(img_path=p)) for p in image_paths]
    inputs = model.data_preprocessor(default_collate(batch), False)['inputs']
    part_ids = read_part_ids(cfg, image_paths, patch_grid(model.backbone), part_root,
                             img_prefix)
    mask, input_mask, note = config_masks(model, cfg, checkpoint, part_ids, len(batch), seed,
                                        epoch)
    columns = reconstruction_columns(model, inputs, mask, input_mask)
    save_grid([[columns[name][i] for name in COLUMNS] for i in range(len(batch))], out_file,
              titles=COLUMNS)
    return note
