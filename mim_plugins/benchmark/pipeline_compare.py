"""``tools/benchmark.py pipeline``: a stock training pipeline against its crop-aware-decoding
variant (``mim_plugins/datasets/crop_decode.py``), side by side in one process on real JPEG
files (generated ImageNet-like ones by default, ``mim_plugins/datasets/jpeg_set.py``):

- images per second on one core (one thread, as in a dataloader worker), in alternating rounds;
- the crop boxes: with the same seed, how many are identical, and two-sample Kolmogorov-Smirnov
  tests of their area, aspect ratio and centre against boxes drawn with another seed;
- the pixel difference, as PSNR over the set: ours against our own full-decode output (the
  same boxes; only the reduced-scale decoding differs) and against the stock output;
- where our time goes (cProfile, the functions with the most own time).
"""
import argparse
import contextlib
import copy
import cProfile
import glob
import json
import math
import os
import os.path as osp
import pstats
import random
import statistics
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from ..datasets.crop_decode import (RandomResizedCropDecode, RandomResizedCropDecodeWithTwoPic,
                                    draft_scale)
from ..datasets.jpeg_set import JpegSetSpec, summary, write_jpeg_set
from ..datasets.part_maps import part_map_path, save_part_map
from ..utils.errors import UserInputError
from .measure import load_config
from .synthetic import train_dataset_cfg

# ours=stock: each family's crop-aware variant against the pipeline it replaces (MAE's against
# mmpretrain's own config, the reference of the measurement)
DEFAULT_PAIRS = [
    'configs/mae/crop_decode/mae_vit-base-p16_8xb512-cropdecode-coslr-800e_in1k.py='
    'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py',
    'configs/supmae/crop_decode/supmae_vit-base-p16_8xb512-cropdecode-coslr-400e_in1k.py='
    'configs/supmae/supmae_vit-base-p16_8xb512-coslr-400e_in1k.py',
    'configs/semmae/crop_decode/semmae_vit-base-p16_8xb256-cropdecode-coslr-800e_in1k.py='
    'configs/semmae/semmae_vit-base-p16_8xb256-coslr-800e_in1k.py',
    'configs/beit/crop_decode/beit_vit-base-p16_8xb256-cropdecode-coslr-300e_in1k.py='
    'configs/beit/beit_vit-base-p16_8xb256-coslr-300e_in1k.py',
    'configs/maskfeat/crop_decode/maskfeat_vit-base-p16_8xb256-cropdecode-coslr-300e_in1k.py='
    'configs/maskfeat/maskfeat_vit-base-p16_8xb256-coslr-300e_in1k.py',
]
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff')
Box = Tuple[int, int, int, int, int, int]  # image h, w, then the box's top, left, height, width


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/benchmark.py pipeline', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', help='a folder of images (searched recursively, e.g. an '
                        'ImageNet train/ tree); default: --images generated JPEGs')
    parser.add_argument('--images', type=int, default=200,
                        help='images generated, or the first ones of --data (default 200)')
    parser.add_argument('--pair', action='append', metavar='OURS=STOCK',
                        help='configs whose train pipelines are compared (default: the five '
                        'crop_decode configs against their parents, MAE against mmpretrain)')
    parser.add_argument('--rounds', type=int, default=3,
                        help='alternating timed rounds over the set (the median counts)')
    parser.add_argument('--box-passes', type=int, default=3,
                        help='passes over the set for the box and PSNR statistics')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--profile-top', type=int, default=8,
                        help='functions listed in the profile of ours (0: no profile)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    args.pair = args.pair or DEFAULT_PAIRS
    for pair in args.pair:
        if not pair.partition('=')[2]:
            raise UserInputError(f'--pair {pair!r}: expected OURS=STOCK, two config paths.')
    for name in ('images', 'rounds', 'box_passes'):
        if getattr(args, name) < 1:
            raise UserInputError(f"--{name.replace('_', '-')} must be at least 1. Fix: pass a "
                                 'positive number.')
    return args


def image_files(root: str, count: int) -> List[str]:
    """The first ``count`` image files under ``root`` (recursively, sorted)."""
    paths = sorted(p for p in glob.glob(osp.join(root, '**', '*'), recursive=True)
                   if p.lower().endswith(IMAGE_EXTENSIONS))[:count]
    if not paths:
        raise UserInputError(f"--data {root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) "
                             'under it. Fix: point --data at an image folder, or drop it to '
                             'generate JPEGs.')
    return paths


def build_pipeline(config: str, paths: Sequence[str], work_dir: str, seed: int = 0,
                   full_decode: bool = False) -> Compose:
    """The config's train pipeline for ``paths``: ``LoadPartMap`` reads random part maps of its
    grid written once under ``work_dir``; ``full_decode`` sets ``max_draft_scale=1`` on our
    transforms (the full-decode reference of the same boxes)."""
    cfg = load_config(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    specs = copy.deepcopy(train_dataset_cfg(cfg).pipeline)
    prefix = osp.commonpath([osp.dirname(p) for p in paths])
    rng = np.random.default_rng(seed)
    for spec in specs:
        if spec.get('type') == 'LoadPartMap':
            grid, parts = spec.get('grid', 14), spec.get('num_parts', 7)
            spec.update(part_root=osp.join(work_dir, f'part_maps_{grid}_{parts}'),
                        img_prefix=prefix)
            for path in paths:
                target = part_map_path(spec.part_root, prefix, path)
                if not osp.isfile(target):
                    save_part_map(target, rng.integers(0, parts, (grid, grid)))
        if full_decode and spec.get('type') in ('RandomResizedCropDecode',
                                                'RandomResizedCropDecodeWithTwoPic'):
            spec['max_draft_scale'] = 1
    return Compose(specs)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread and no OpenCV pool, as in a dataloader worker."""
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)


def run(pipeline: Compose, paths: Sequence[str], seed: int) -> List[List[torch.Tensor]]:
    """Every image through ``pipeline`` after seeding numpy and ``random``: per image, its
    output tensors (one, or BEiT's two views)."""
    np.random.seed(seed)
    random.seed(seed)
    outputs = []
    for i, path in enumerate(paths):
        inputs = pipeline(dict(img_path=path, sample_idx=i, gt_label=0))['inputs']
        outputs.append(list(inputs) if isinstance(inputs, (list, tuple)) else [inputs])
    return outputs


def throughput(pipelines: Dict[str, Compose], paths: Sequence[str], rounds: int,
               seed: int) -> Dict[str, float]:
    """Median img/s of each pipeline over ``rounds`` timed passes, after one untimed pass; the
    order alternates between rounds so that neither the machine's load nor going first
    favours one."""
    names = list(pipelines)
    for name in names:
        run(pipelines[name], paths[:8], seed)
    rates: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            run(pipelines[name], paths, seed + r)
            rates[name].append(len(paths) / (time.perf_counter() - start))
    return {n: statistics.median(v) for n, v in rates.items()}


def crop_transforms(pipeline: Compose) -> list:
    """The transforms of ``pipeline`` that draw a crop box (stock ones and ours)."""
    from mmpretrain.datasets.transforms import (RandomResizedCrop,
                                                RandomResizedCropAndInterpolationWithTwoPic)
    return [t for t in pipeline.transforms
            if isinstance(t, (RandomResizedCrop, RandomResizedCropAndInterpolationWithTwoPic))]


@contextlib.contextmanager
def recorded_boxes(pipeline: Compose) -> Iterator[List[Box]]:
    """The boxes the pipeline's crop transforms draw while in the block, as ``(h, w, top,
    left, height, width)``: their box-drawing method is wrapped on the instances (and restored)."""
    boxes: List[Box] = []
    wrapped = []
    for t in crop_transforms(pipeline):
        name = 'rand_crop_params' if hasattr(t, 'rand_crop_params') else 'get_params'
        draw = getattr(t, name)

        def record(img, *args, _draw=draw):
            box = _draw(img, *args)
            boxes.append((*img.shape[:2], *box))
            return box

        setattr(t, name, record)
        wrapped.append((t, name))
    try:
        yield boxes
    finally:
        for t, name in wrapped:
            delattr(t, name)  # the class's method shows through again


def box_features(boxes: Sequence[Box]) -> Dict[str, np.ndarray]:
    """Per box: area fraction of the image, log aspect ratio (w/h), relative centre x and y."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 6)
    h, w, top, left, bh, bw = b.T
    return {'area': bh * bw / (h * w), 'log_aspect': np.log(bw / bh),
            'centre_x': (left + bw / 2) / w, 'centre_y': (top + bh / 2) / h}


def ks_pvalues(a: Sequence[Box], b: Sequence[Box]) -> Dict[str, float]:
    """Two-sample KS p-value of each box feature (same distribution: p spread over (0, 1))."""
    from scipy.stats import ks_2samp  # scipy comes with scikit-image
    fa, fb = box_features(a), box_features(b)
    return {k: float(ks_2samp(fa[k], fb[k]).pvalue) for k in fa}


class PSNR:
    """PSNR in dB of outputs against references, accumulated image by image: over the whole
    set (the mean squared error over every pixel of every view), the lowest per image, and how
    many images differ at all (identical outputs: inf)."""

    def __init__(self):
        self.se, self.count, self.worst, self.differ = 0.0, 0, math.inf, 0

    def add(self, ours: Sequence[List[torch.Tensor]], ref: Sequence[List[torch.Tensor]]) -> None:
        for a, b in zip(ours, ref):
            err = sum(float(((x.double() - y.double()) ** 2).sum()) for x, y in zip(a, b))
            n = sum(x.numel() for x in a)
            self.se, self.count = self.se + err, self.count + n
            if err:
                self.differ += 1
                self.worst = min(self.worst, 10 * math.log10(255 ** 2 * n / err))

    @property
    def overall(self) -> float:
        return 10 * math.log10(255 ** 2 * self.count / self.se) if self.se else math.inf


def output_hw(pipeline: Compose) -> Optional[Tuple[int, int]]:
    """The largest output (h, w) of our crop transform in ``pipeline`` (what the draft keeps)."""
    for t in pipeline.transforms:
        if isinstance(t, RandomResizedCropDecodeWithTwoPic):
            sizes = t._out_sizes()
            return max(s[0] for s in sizes), max(s[1] for s in sizes)
        if isinstance(t, RandomResizedCropDecode):
            return tuple(t.scale)
    return None


def profile(pipeline: Compose, paths: Sequence[str], seed: int, top: int) -> List[dict]:
    """The ``top`` functions by own time over one pass of ``pipeline``: name, ms per image,
    share of the pass."""
    prof = cProfile.Profile()
    prof.enable()
    run(pipeline, paths, seed)
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())
    rows = sorted(((v[2], k) for k, v in stats.items()), reverse=True)[:top]
    return [dict(function=f'{osp.basename(k[0])}:{k[2]}' if k[0] != '~' else k[2],
                 ms_per_img=own / len(paths) * 1e3, share=own / total) for own, k in rows]


def compare_pair(ours: str, stock: str, paths: Sequence[str], work_dir: str,
                 args: argparse.Namespace) -> dict:
    """Every measurement of one OURS=STOCK pair on ``paths`` (module docstring)."""
    pipes = {'stock': build_pipeline(stock, paths, work_dir, args.seed),
             'ours': build_pipeline(ours, paths, work_dir, args.seed)}
    if not crop_transforms(pipes['stock']) or output_hw(pipes['ours']) is None:
        raise UserInputError(f'--pair {ours}={stock}: OURS needs a RandomResizedCropDecode(...'
                             'WithTwoPic) and STOCK a RandomResizedCrop-like transform in '
                             'their train pipelines. Fix: pass a crop_decode config first.')
    full = build_pipeline(ours, paths, work_dir, args.seed, full_decode=True)
    with one_thread():
        rates = throughput(pipes, paths, args.rounds, args.seed)
        vs_full, vs_stock = PSNR(), PSNR()
        boxes: Dict[str, List[Box]] = {'stock': [], 'ours': [], 'ours_other_seed': []}
        for p in range(args.box_passes):
            seed = args.seed + 1000 * (p + 1)
            outputs = {}
            for name, pipe in (('stock', pipes['stock']), ('ours', pipes['ours'])):
                with recorded_boxes(pipe) as drawn:
                    outputs[name] = run(pipe, paths, seed)
                boxes[name] += drawn
            vs_full.add(outputs['ours'], run(full, paths, seed))
            vs_stock.add(outputs['ours'], outputs['stock'])
            with recorded_boxes(pipes['ours']) as drawn:
                run(pipes['ours'], paths, seed + 1)
            boxes['ours_other_seed'] += drawn
        top = profile(pipes['ours'], paths, args.seed, args.profile_top) \
            if args.profile_top else []
    out_hw = output_hw(pipes['ours'])
    scales = [draft_scale((b[4], b[5]), out_hw) for b in boxes['ours']]
    identical = sum(a == b for a, b in zip(boxes['stock'], boxes['ours']))
    same_boxes = identical == len(boxes['ours'])  # else the stock output is another crop
    return dict(
        ours=ours, stock=stock, images=len(paths), stock_img_s=rates['stock'],
        ours_img_s=rates['ours'], speedup=rates['ours'] / rates['stock'],
        boxes=len(boxes['ours']), identical_boxes=identical,
        ks_pvalues=ks_pvalues(boxes['stock'], boxes['ours_other_seed']),
        draft_scales={str(s): scales.count(s) for s in sorted(set(scales))},
        psnr_vs_full_decode=vs_full.overall, min_psnr_vs_full_decode=vs_full.worst,
        images_differing_from_full_decode=vs_full.differ,
        psnr_vs_stock=vs_stock.overall if same_boxes else None,
        min_psnr_vs_stock=vs_stock.worst if same_boxes else None, profile=top)


def _db(value: Optional[float]) -> str:
    if value is None:
        return '- (other boxes)'
    return 'identical' if math.isinf(value) else f'{value:.1f}'


def table(rows: List[dict]) -> str:
    """The comparisons as a Markdown table."""
    head = ['ours', 'stock img/s', 'ours img/s', 'speed-up', 'same boxes (same seed)',
            'KS p min (other seed)', 'draft scales 1/2/4/8', 'PSNR vs full decode dB (min)',
            'PSNR vs stock dB (min)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        scales = '/'.join(str(r['draft_scales'].get(str(s), 0)) for s in (1, 2, 4, 8))
        lines.append('| ' + ' | '.join([
            osp.basename(r['ours']), f"{r['stock_img_s']:.0f}", f"{r['ours_img_s']:.0f}",
            f"{r['speedup']:.2f}x", f"{r['identical_boxes']}/{r['boxes']}",
            f"{min(r['ks_pvalues'].values()):.2f}", scales,
            f"{_db(r['psnr_vs_full_decode'])} ({_db(r['min_psnr_vs_full_decode'])})",
            f"{_db(r['psnr_vs_stock'])}" + ('' if r['psnr_vs_stock'] is None else
                                            f" ({_db(r['min_psnr_vs_stock'])})")]) + ' |')
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as work_dir:
        if args.data:
            paths, data = image_files(args.data, args.images), f'{args.data}'
        else:
            records = write_jpeg_set(osp.join(work_dir, 'jpegs'),
                                     JpegSetSpec(count=args.images, seed=args.seed))
            paths, data = [r.path for r in records], f'generated: {summary(records)}'
        print(f'data: {len(paths)} images ({data})', flush=True)
        rows = []
        for pair in args.pair:
            ours, _, stock = pair.partition('=')
            rows.append(compare_pair(ours, stock, paths, work_dir, args))
            print(f"{osp.basename(ours)}: {rows[-1]['ours_img_s']:.0f} img/s vs "
                  f"{rows[-1]['stock_img_s']:.0f} stock", flush=True)
    load_after = os.getloadavg()
    print(table(rows))
    for r in rows:
        if r['profile']:
            print(f"\nwhere {osp.basename(r['ours'])} spends its time (own time):")
            for p in r['profile']:
                print(f"  {p['share']:6.1%}  {p['ms_per_img']:.3f} ms/img  {p['function']}")
    print(f'\nload average (1 min) before / after: {load_before[0]:.2f} / {load_after[0]:.2f} '
          f'on {os.cpu_count()} cores (the img/s are per core, one thread)')
    report = dict(data=data, images=len(paths), cpu_count=os.cpu_count(),
                  load_average_before=load_before, load_average_after=load_after,
                  comparisons=rows)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    return report
