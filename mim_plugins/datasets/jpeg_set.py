"""ImageNet-like JPEG files made offline from the photographs that ship inside scikit-image, for
the data-pipeline benchmark and tests (``tools/dataset_converters/make_jpeg_set.py``).

Layout (mmpretrain's ``CustomDataset``, as ImageNet's ``train`` split)::

    {root}/{split}/{photo}/{photo}_{index:05d}.JPEG   one class folder per source photograph
    {root}/meta/{split}.txt                           '{photo}/{file} {label}' lines
    {root}/meta/classes.txt                           the photographs used, sorted: label order

Each image is a random crop of one photograph (a flip, a colour and gamma change, a little sensor
noise), resized to an ImageNet-like size: a long side of mostly 500 px and the common aspect
ratios (500x375, 500x333, 375x500, 500x500, ...), saved at quality ``quality`` ± ``spread`` with
4:2:0 chroma. A fraction is grayscale, a fraction CMYK (Adobe, as Photoshop writes them) and a
fraction large (``large_side`` px long side, as the big camera photos of ImageNet). Only files of
the installed scikit-image package are read (``skimage/data``): nothing downloads.
"""
import importlib.util
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from ..utils.errors import UserInputError

#: colour photographs in ``skimage/data`` (the wheel's own files, no pooch download)
SOURCE_PHOTOS: Tuple[str, ...] = (
    'astronaut.png', 'chelsea.png', 'coffee.png', 'hubble_deep_field.jpg', 'ihc.png',
    'motorcycle_left.png', 'motorcycle_right.png', 'retina.jpg', 'rocket.jpg')
#: (long / short side, probability, portrait) of the image shapes
_SHAPES = ((4 / 3, 0.42, False), (3 / 2, 0.18, False), (1.0, 0.10, False),
           (4 / 3, 0.14, True), (3 / 2, 0.08, True), (None, 0.08, None))
KINDS = ('rgb', 'gray', 'cmyk', 'large')


@dataclass(frozen=True)
class JpegSetSpec:
    """What ``write_jpeg_set`` makes: ``count`` images, deterministic in ``seed``.

    ``gray``, ``cmyk`` and ``large`` are fractions of ``count`` (each kind gets at least one
    image when its fraction is above 0); ``long_side`` is the usual long side in px (80% of the
    normal images; the others 300..800), ``large_side`` that of the large ones; ``noise`` the
    standard deviation of the added sensor noise in 8-bit levels."""
    count: int = 200
    seed: int = 0
    long_side: int = 500
    large_side: int = 2000
    quality: int = 90
    spread: int = 5
    gray: float = 0.05
    cmyk: float = 0.02
    large: float = 0.03
    noise: float = 2.0

    def check(self) -> None:
        """``UserInputError`` naming the bad setting and its range."""
        problems = []
        if self.count < 1:
            problems.append(f'count {self.count} (must be >= 1)')
        if not 1 <= self.quality <= 100 or self.spread < 0:
            problems.append(f'quality {self.quality} ± {self.spread} (quality 1..100)')
        if not 16 <= self.long_side <= self.large_side:
            problems.append(f'long side {self.long_side} / large side {self.large_side} '
                            '(16 <= long <= large)')
        fractions = (self.gray, self.cmyk, self.large)
        if min(fractions) < 0 or sum(fractions) > 1:
            problems.append(f'fractions gray {self.gray}, cmyk {self.cmyk}, large '
                            f'{self.large} (each >= 0, sum <= 1)')
        if problems:
            raise UserInputError(f"JPEG set: bad {'; '.join(problems)}. Fix: pass values in "
                                 'those ranges.')


@dataclass(frozen=True)
class JpegRecord:
    """One written file: its path, label, kind (``KINDS``), size ``(w, h)`` and quality."""
    path: str
    label: int
    kind: str
    size: Tuple[int, int]
    quality: int


def photo_dir() -> str:
    """The ``data`` folder of the installed scikit-image (its bundled photographs)."""
    spec = importlib.util.find_spec('skimage')
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError('The JPEG benchmark set is made from the photographs that ship in '
                             'scikit-image, which is not installed. Fix: pip install '
                             'scikit-image (requirements/runtime.txt).')
    path = osp.join(list(spec.submodule_search_locations)[0], 'data')
    missing = [p for p in SOURCE_PHOTOS if not osp.isfile(osp.join(path, p))]
    if missing:
        raise UserInputError(f'scikit-image at {path} lacks {", ".join(missing)}. Fix: '
                             'pip install --force-reinstall scikit-image.')
    return path


def load_photos() -> Dict[str, np.ndarray]:
    """The source photographs, name (file stem) -> RGB uint8 ``(H, W, 3)``."""
    root = photo_dir()
    photos = {}
    for name in SOURCE_PHOTOS:
        with Image.open(osp.join(root, name)) as im:
            photos[osp.splitext(name)[0]] = np.asarray(im.convert('RGB'))
    return photos


def kinds_for(spec: JpegSetSpec, rng: np.random.Generator) -> List[str]:
    """The kind of each of the ``spec.count`` images, in a random order: ``round(fraction *
    count)`` of each special kind (at least 1 if its fraction is > 0), the rest 'rgb'."""
    counts = [max(1, round(f * spec.count)) if f > 0 else 0
              for f in (spec.gray, spec.cmyk, spec.large)]
    kinds = [k for k, n in zip(KINDS[1:], counts) for _ in range(n)][:spec.count]
    kinds += ['rgb'] * (spec.count - len(kinds))
    return [kinds[i] for i in rng.permutation(spec.count)]


def image_size(rng: np.random.Generator, long_side: int, varied: bool = True) -> Tuple[int, int]:
    """An ImageNet-like ``(w, h)``: one of the common aspect ratios (or a free one), landscape
    or portrait; the long side is ``long_side`` (or, in 20% of the ``varied`` draws, 300..800)."""
    ratios, probs, portraits = zip(*_SHAPES)
    i = rng.choice(len(_SHAPES), p=np.asarray(probs) / sum(probs))
    ratio = ratios[i] or float(np.exp(rng.uniform(0, np.log(2.0))))
    portrait = portraits[i] if portraits[i] is not None else bool(rng.random() < 0.25)
    long = long_side if not varied or rng.random() < 0.8 else int(rng.integers(300, 801))
    short = max(1, int(round(long / ratio)))
    return (short, long) if portrait else (long, short)


def render(photo: np.ndarray, size: Tuple[int, int], rng: np.random.Generator,
           noise: float) -> Image.Image:
    """A new RGB picture of ``size`` ``(w, h)`` from ``photo`` ``(H, W, 3)`` uint8: a random
    crop of 35..100% of the largest box of that aspect ratio, resized (Lanczos), maybe
    mirrored, with per-channel gains 0.85..1.15, a gamma 0.8..1.25 and Gaussian noise."""
    ph, pw = photo.shape[:2]
    w, h = size
    fit = min(pw / w, ph / h)  # the largest box of the target's aspect inside the photo
    side = fit * np.sqrt(rng.uniform(0.35, 1.0))
    cw, ch = w * side, h * side
    left, top = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
    im = Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS,
                                       box=(left, top, left + cw, top + ch))
    img = np.asarray(im, dtype=np.float32) / 255
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = img ** rng.uniform(0.8, 1.25) * rng.uniform(0.85, 1.15, 3)
    img = img * 255 + rng.normal(0, noise, img.shape) if noise else img * 255
    return Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))


def write_jpeg_set(root: str, spec: JpegSetSpec = JpegSetSpec(),
                   split: str = 'train') -> List[JpegRecord]:
    """Write ``spec.count`` JPEG files under ``root`` in the layout of the module docstring
    (``root/split`` must be empty or absent); returns one record per file."""
    spec.check()
    if osp.isdir(osp.join(root, split)) and os.listdir(osp.join(root, split)):
        raise UserInputError(f'{osp.join(root, split)} already holds files: new images beside '
                             'them would mix two sets (and their labels). Fix: write into an '
                             'empty or new folder, or delete that one first.')
    photos = load_photos()
    names = list(photos)
    rng = np.random.default_rng(spec.seed)
    drawn = []
    for index, kind in enumerate(kinds_for(spec, rng)):
        name = names[int(rng.integers(len(names)))]
        size = image_size(rng, spec.large_side if kind == 'large' else spec.long_side,
                          varied=kind != 'large')
        im = render(photos[name], size, rng, spec.noise)
        im = im.convert({'gray': 'L', 'cmyk': 'CMYK'}.get(kind, 'RGB'))
        quality = int(np.clip(spec.quality + rng.integers(-spec.spread, spec.spread + 1), 1, 100))
        path = osp.join(root, split, name, f'{name}_{index:05d}.JPEG')
        os.makedirs(osp.dirname(path), exist_ok=True)
        im.save(path, 'JPEG', quality=quality)
        drawn.append((path, name, kind, size, quality))
    # labels index the photographs used, sorted: CustomDataset's labels of the class folders
    classes = sorted({name for _, name, *_ in drawn})
    records = [JpegRecord(path, classes.index(name), kind, size, quality)
               for path, name, kind, size, quality in drawn]
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
        f.writelines(f'{osp.relpath(r.path, osp.join(root, split))} {r.label}\n' for r in records)
    with open(osp.join(root, 'meta', 'classes.txt'), 'w') as f:
        f.writelines(f'{name}\n' for name in classes)
    return records


def summary(records: List[JpegRecord]) -> str:
    """One line: how many files of each kind, the median size and file size."""
    kinds = {k: sum(r.kind == k for r in records) for k in KINDS}
    bytes_ = sorted(osp.getsize(r.path) for r in records)
    sizes = sorted(r.size for r in records if r.kind != 'large')
    common = sizes[len(sizes) // 2] if sizes else records[0].size
    return (f"{len(records)} JPEGs ({', '.join(f'{n} {k}' for k, n in kinds.items())}), "
            f'median normal size {common[0]}x{common[1]}, median file '
            f'{bytes_[len(bytes_) // 2] / 1024:.0f} KiB')
