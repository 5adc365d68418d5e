"""SemMAE stage 1: part maps from dataset-level k-means on a frozen self-supervised ViT.

1. Fit (rank 0): stream ``fit_images`` randomly drawn images through the ViT for ``fit_epochs``
   passes; their unit-length last-layer patch features update a mini-batch k-means with K
   centres (k-means++ seeding on the first batch). Centres are renumbered by decreasing size and
   saved, with what produced them, to ``centroids_file``; a later run with the same ViT
   checkpoint (same content) reuses them (resume), one with another is refused.
2. Assign (every rank, its shard ``i % world == rank`` of the sorted image list): each patch
   takes the id of its nearest centre; one ``grid x grid`` 8-bit PNG per image is written where
   ``LoadPartMap`` reads it (``mim_plugins.datasets.part_maps``). Images whose map exists are
   skipped; a map is written to a temporary name and renamed, so an interrupted run never
   leaves a half-written map that a resume would take as done.

Because the centres are shared by the whole data set, part ``k`` is the same kind of region
(the same cluster of ViT features) in every image. Memory holds one batch of features and
the K centres, whatever the data set size. Unreadable images are skipped and listed in the
summary (``{part_root}/part_learning.json``).
"""
import hashlib
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from mmengine.utils import ProgressBar
from mmpretrain.datasets.custom import get_samples
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..datasets.part_maps import part_map_path, save_part_map
from ..utils.errors import MissingFileError, UserInputError
from ..datasets.read_image import read_rgb
from .features import build_frozen_vit, image_size, patch_features
from .kmeans import assign, kmeans_plus_plus, minibatch_update, order_by_count

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
SUMMARY_NAME = 'part_learning.json'
CENTROIDS_NAME = 'centroids.pth'


def list_images(img_prefix: str, ann_file: Optional[str] = None,
                exclude: Optional[str] = None) -> List[str]:
    """Sorted image paths under ``img_prefix`` (CustomDataset's rules): the first column of each
    line of ``ann_file`` if given, else every image file below the folder, recursively; files
    under ``exclude`` (the part-map folder, when it lies inside the image folder) are left out."""
    if not osp.isdir(img_prefix):
        raise MissingFileError(f"Image folder '{img_prefix}' does not exist. Fix: pass "
                               '--data-root (and --data-prefix) of an ImageNet / CustomDataset '
                               "folder, e.g. --data-root data/mnist5k --data-prefix train.")
    if ann_file:
        if not osp.isfile(ann_file):
            raise MissingFileError(f"Annotation file '{ann_file}' does not exist. Fix: pass an "
                                   'existing --ann-file, or none to scan the image folder.')
        with open(ann_file) as f:
            rel = [line.split()[0] for line in f if line.strip()]
    else:
        rel, _ = get_samples(img_prefix, None,
                             is_valid_file=lambda p: p.lower().endswith(IMG_EXTENSIONS))
    paths = sorted(osp.join(img_prefix, r) for r in rel)
    if exclude is not None:
        skip = osp.abspath(exclude) + osp.sep
        paths = [p for p in paths if not osp.abspath(p).startswith(skip)]
    if not paths:
        raise UserInputError(f"No images found in '{img_prefix}'"
                             + (f" listed by '{ann_file}'" if ann_file else '')
                             + f'. Fix: point --data-root / --data-prefix at a folder of '
                             f"{', '.join(IMG_EXTENSIONS)} images.")
    return paths


def normalise_image(image: Image.Image, size: Tuple[int, int], mean: Sequence[float],
                    std: Sequence[float], to_rgb: bool = True) -> torch.Tensor:
    """An RGB PIL image resized to ``size`` (H, W), bicubic, normalised -> (3, H, W) float32.
    Channels are RGB when the config's preprocessor has ``to_rgb=True`` (its mean/std are then
    RGB), else BGR."""
    img = image.resize((size[1], size[0]), Image.BICUBIC)
    pixels = torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1)
    if not to_rgb:
        pixels = pixels.flip(0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (pixels - mean_t) / std_t


def load_image(path: str, size: Tuple[int, int], mean: Sequence[float], std: Sequence[float],
               to_rgb: bool = True) -> torch.Tensor:
    """The test-style input of the part learner: the WHOLE image (part maps cover it, before any
    crop) through :func:`normalise_image` -> (3, H, W) float32. Decoded as training decodes
    (``read_rgb``: 16-bit images scaled, not clipped); raises ``UserInputError`` for an
    unreadable file."""
    return normalise_image(Image.fromarray(read_rgb(path)), size, mean, std, to_rgb)


class ImageList(Dataset):
    """``paths[i]`` -> ``(i, image (3, H, W) or None, error message or None)``: an unreadable
    image is returned as its error instead of raising, so one corrupt file loses nothing else."""

    def __init__(self, paths: Sequence[str], size: Tuple[int, int], norm: Dict):
        self.paths = paths
        self.size = size
        self.norm = norm

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, load_image(self.paths[i], self.size, **self.norm), None
        except Exception as exc:  # noqa: BLE001  (any decoding failure marks the image corrupt)
            return i, None, f'{type(exc).__name__}: {exc}'


def collate(items) -> Tuple[List[int], Optional[torch.Tensor], List[Tuple[int, str]]]:
    """Batch of readable images: (their indices, (B, 3, H, W) or None if none, [(index, error)]
    of the unreadable ones)."""
    good = [(i, img) for i, img, err in items if err is None]
    bad = [(i, err) for i, _, err in items if err is not None]
    images = torch.stack([img for _, img in good]) if good else None
    return [i for i, _ in good], images, bad


def _loader(dataset: Dataset, indices: Sequence[int], batch_size: int,
            num_workers: int) -> DataLoader:
    subset = torch.utils.data.Subset(dataset, list(indices))
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate)


def fit_centroids(model: torch.nn.Module, dataset: ImageList, num_parts: int,
                  grid: Tuple[int, int], fit_images: int, fit_epochs: int, batch_size: int,
                  num_workers: int = 0, seed: int = 0, device: str = 'cpu',
                  progress: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mini-batch k-means on the patch features of ``min(fit_images, len(dataset))`` images drawn
    at random, ``fit_epochs`` passes in a fresh order each. Returns ``(centroids (K, C),
    counts (K,))``, ordered by decreasing count. Unreadable images are skipped."""
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randperm(len(dataset), generator=gen)[:fit_images]
    bar = ProgressBar(fit_epochs * len(sample)) if progress else None
    centroids = counts = None
    for _ in range(fit_epochs):
        order = sample[torch.randperm(len(sample), generator=gen)].tolist()
        for indices, images, bad in _loader(dataset, order, batch_size, num_workers):
            if images is not None:
                x = patch_features(model, images.to(device), grid).flatten(0, 1)
                if centroids is None:
                    if x.shape[0] < num_parts:
                        raise UserInputError(
                            f'The first batch has {x.shape[0]} patches, too few to seed '
                            f'{num_parts} parts. Fix: raise --batch-size or lower --num-parts.')
                    centroids = kmeans_plus_plus(x, num_parts, generator=gen)
                    counts = torch.zeros(num_parts, dtype=x.dtype, device=x.device)
                centroids, counts = minibatch_update(centroids, counts, x)
            if bar is not None:
                bar.update(len(indices) + len(bad))
    if bar is not None:
        print(flush=True)
    if centroids is None:
        raise UserInputError('None of the images drawn to fit the parts could be read. Fix: '
                             'check the image folder (all files corrupt or not images?).')
    return order_by_count(centroids.cpu(), counts.cpu())


@torch.no_grad()
def part_ids_of(model: torch.nn.Module, images: torch.Tensor, centroids: torch.Tensor,
                grid: Tuple[int, int]) -> np.ndarray:
    """(B, 3, H, W) normalised images -> (B, gh, gw) uint8: each cell's nearest centre."""
    feats = patch_features(model, images, grid)  # (B, gh * gw, C)
    labels = assign(feats.flatten(0, 1), centroids.to(feats.device))
    return labels.view(images.shape[0], *grid).cpu().numpy().astype(np.uint8)


def write_part_map(path: str, part_ids: np.ndarray) -> None:
    """``save_part_map`` to a temporary name, then an atomic rename to ``path``."""
    tmp = osp.join(osp.dirname(path), f'.tmp-{os.getpid()}-{osp.basename(path)}')
    save_part_map(tmp, part_ids)
    os.replace(tmp, path)


def _dist_info() -> Tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def file_digest(path: str) -> str:
    """SHA-256 of the file ``path`` (hex): which weights a centroids file was fitted on."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _load_centroids(path: str, num_parts: int, grid: Tuple[int, int], dims: int,
                    checkpoint: str) -> torch.Tensor:
    """Centroids of an earlier run, checked against this run's K, grid, feature size and ViT
    checkpoint: the same weights (by content when the file recorded it, else by path)."""
    saved = torch.load(path, map_location='cpu', weights_only=True)
    digest = saved.get('checkpoint_sha256')
    same = digest == file_digest(checkpoint) if digest else \
        osp.realpath(saved['checkpoint']) == osp.realpath(checkpoint)
    if not same:
        # Refused, not refitted: the maps already written came from the old centroids, and
        # replacing the centroids alone would leave a mix that part_learning.json misnames.
        raise UserInputError(
            f"Centroids file '{path}' and the part maps next to it were made with the ViT "
            f"checkpoint '{saved['checkpoint']}', but this run asks for '{checkpoint}'. Fix: "
            'pass a new --part-root for this checkpoint, or delete that folder (centroids and '
            'maps) to redo it.')
    got = (saved['num_parts'], tuple(saved['grid']), saved['centroids'].shape[1])
    if got != (num_parts, tuple(grid), dims):
        raise UserInputError(
            f"Centroids file '{path}' was fitted with K={got[0]}, grid={got[1]}, feature size "
            f'{got[2]}, but this run asks for K={num_parts}, grid={tuple(grid)}, feature size '
            f'{dims}. Fix: pass a new --part-root (or --centroids file), or delete it and the '
            'maps it produced to start over.')
    return saved['centroids']


def learn_parts(config: str, checkpoint: str, data_root: str, data_prefix: str = '',
                ann_file: Optional[str] = None, part_root: Optional[str] = None,
                num_parts: int = 7, grid: Optional[int] = None, batch_size: int = 64,
                fit_images: int = 10000, fit_epochs: int = 3, num_workers: int = 0,
                seed: int = 0, centroids_file: Optional[str] = None,
                progress: bool = True) -> Dict:
    """Write one part map per image of ``data_root/data_prefix`` under ``part_root`` (default
    ``data_root/part_maps/data_prefix``); see the module docstring. Runs sharded when a process
    group is initialised (rank 0 fits or loads the centroids and broadcasts them).

    Args:
        config / checkpoint: the frozen ViT (mmpretrain config and checkpoint).
        num_parts: K in 1..256 (8-bit maps); SemMAE uses 7.
        grid: side of the part map (the masking setting's patch grid); default the ViT's grid.
        fit_images / fit_epochs: the k-means sample size and passes over it.
        centroids_file: default ``{part_root}/centroids.pth``; reused when it exists.

    Returns the summary also written (by rank 0) to ``{part_root}/part_learning.json``:
    image counts, maps written per rank, skipped (already done), corrupt images with errors.
    """
    start = time.time()
    if not 1 <= num_parts <= 256:
        raise UserInputError(f'--num-parts {num_parts} is outside 1..256 (part maps are 8-bit). '
                             'Fix: pass the number of parts K (SemMAE: 7).')
    rank, world = _dist_info()
    device = f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available() else 'cpu'
    img_prefix = osp.join(data_root, data_prefix) if data_prefix else data_root
    part_root = part_root or osp.join(data_root, 'part_maps', data_prefix)
    centroids_file = centroids_file or osp.join(part_root, CENTROIDS_NAME)
    paths = list_images(img_prefix, ann_file, exclude=part_root)
    model, norm = build_frozen_vit(config, checkpoint, device)
    vit_grid = tuple(model.patch_embed.init_out_size)
    if grid is None and vit_grid[0] != vit_grid[1]:
        raise UserInputError(f'The ViT has a {vit_grid} token grid; part maps are square. '
                             'Fix: pass --grid, the side of the masking patch grid.')
    grid_hw = (grid, grid) if grid else vit_grid
    dataset = ImageList(paths, image_size(model), norm)

    # Rank 0 fits (or reloads) the centres; the others receive them.
    centroids = torch.zeros(num_parts, model.embed_dims)
    if rank == 0:
        if osp.isfile(centroids_file):
            centroids = _load_centroids(centroids_file, num_parts, grid_hw, model.embed_dims,
                                        checkpoint)
            print(f'Reusing the part centroids of {centroids_file}', flush=True)
        else:
            print(f'Fitting {num_parts} part centroids on '
                  f'{min(fit_images, len(paths))} images x {fit_epochs} passes', flush=True)
            centroids, counts = fit_centroids(model, dataset, num_parts, grid_hw, fit_images,
                                              fit_epochs, batch_size, num_workers, seed, device,
                                              progress)
            os.makedirs(osp.dirname(osp.abspath(centroids_file)), exist_ok=True)
            torch.save(dict(centroids=centroids, counts=counts, num_parts=num_parts,
                            grid=grid_hw, config=config, checkpoint=checkpoint,
                            checkpoint_sha256=file_digest(checkpoint),
                            fit_images=min(fit_images, len(paths)), fit_epochs=fit_epochs,
                            seed=seed), centroids_file)
    if world > 1:
        centroids = centroids.to(device)  # nccl broadcasts GPU tensors only; gloo takes either
        dist.broadcast(centroids, src=0)

    # Shard BEFORE looking at which maps exist: another rank may already be writing its own.
    maps = [part_map_path(part_root, img_prefix, p) for p in paths]
    shard = [i for i in range(rank, len(paths), world) if not osp.isfile(maps[i])]
    skipped = len(range(rank, len(paths), world)) - len(shard)
    written, corrupt = 0, []
    bar = ProgressBar(len(shard)) if progress and rank == 0 and shard else None
    for indices, images, bad in _loader(dataset, shard, batch_size, num_workers):
        if images is not None:
            for i, ids in zip(indices, part_ids_of(model, images.to(device), centroids, grid_hw)):
                write_part_map(maps[i], ids)
            written += len(indices)
        corrupt += [dict(path=paths[i], error=err) for i, err in bad]
        if bar is not None:
            bar.update(len(indices) + len(bad))
    if bar is not None:
        print(flush=True)

    mine = dict(written=written, skipped=skipped, corrupt=corrupt)
    return finish_summary(mine, world, rank, start, config=config,
                          checkpoint=checkpoint, img_prefix=img_prefix, part_root=part_root,
                          centroids_file=centroids_file, num_parts=num_parts,
                          grid=list(grid_hw), images=len(paths))


def finish_summary(mine: dict, world: int, rank: int, start: float, **fields) -> dict:
    """Gather every rank's ``mine`` (``written``, ``skipped``, ``corrupt``), add the totals to
    ``fields`` (what ran: ``part_root``, config, checkpoint, grid, ...) and write the result as
    ``part_root``'s ``SUMMARY_NAME`` (rank 0); returns it. Shared by the k-means and learned
    writers; ``start`` is the run's ``time.time()`` at its start."""
    part_root = fields['part_root']
    per_rank = [None] * world
    if world > 1:
        dist.all_gather_object(per_rank, mine)
    else:
        per_rank = [mine]
    summary = dict(
        fields, written=sum(r['written'] for r in per_rank),
        written_by_rank=[r['written'] for r in per_rank],
        skipped_existing=sum(r['skipped'] for r in per_rank),
        corrupt=[c for r in per_rank for c in r['corrupt']],
        world_size=world, seconds=round(time.time() - start, 1))
    if rank == 0:
        os.makedirs(part_root, exist_ok=True)
        with open(osp.join(part_root, SUMMARY_NAME), 'w') as f:
            json.dump(summary, f, indent=1)
    return summary


def print_summary(summary: dict, what: str = 'parts') -> None:
    """The writers' closing lines: counts, the maps' grid and where they are, the first
    corrupt images; ``what`` names the parts (e.g. ``'learned parts'``)."""
    corrupt = summary['corrupt']
    print(f"{summary['images']} images: {summary['written']} part maps written, "
          f"{summary['skipped_existing']} already there, {len(corrupt)} corrupt skipped; "
          f"{summary['grid'][0]}x{summary['grid'][1]} maps of {summary['num_parts']} {what} "
          f"in {summary['part_root']} ({summary['seconds']} s)")
    for item in corrupt[:20]:
        print(f"  corrupt: {item['path']} ({item['error']})")
    if corrupt:
        print(f"  all corrupt images are listed in "
              f"{osp.join(summary['part_root'], SUMMARY_NAME)}")
