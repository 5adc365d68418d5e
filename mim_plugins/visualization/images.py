"""User images for the figures and the web demo (read as training reads them:
``datasets.read_image.read_rgb``; checked and resized here), with one clear error per bad file;
figures as titled grids."""
import os.path as osp
from typing import List, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..utils.errors import UserInputError


def check_size(image: np.ndarray, size: int, patch: int, name: str = 'the image') -> None:
    """Reject an image whose shorter side is under half the model's input side ``size``: it
    would be upscaled more than 2x, so every ``patch``-pixel patch would hold less than a
    quarter of real pixels and the figure would show interpolation, not the image."""
    least = max(patch, (size + 1) // 2)
    height, width = image.shape[:2]
    if min(height, width) < least:
        raise UserInputError(
            f'{name} is {width}x{height} pixels, too small for this model: it takes '
            f'{size}x{size} images in {patch}x{patch}-pixel patches, and an image under {least} '
            f'pixels a side would be upscaled more than 2x. Fix: use an image at least '
            f'{least}x{least} pixels.')


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8: the central square crop, resized bicubic (as
    the configs' crops are), so photographs keep their aspect ratio."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(image[top:top + side, left:left + side])
    return np.array(crop.resize((size, size), Image.BICUBIC))


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """(h, w, 3) uint8 -> (size, size, 3) uint8 with nearest neighbours, so patch edges stay
    sharp when a 28-pixel image is shown at a readable size."""
    return np.array(Image.fromarray(image).resize((size, size), Image.NEAREST))


def display_size(size: int, least: int = 224) -> int:
    """Side at which a ``size``-pixel model input is shown: the smallest whole multiple of it
    that is at least ``least`` pixels (28 -> 224, 224 -> 224, 100 -> 300)."""
    return size * max(1, -(-least // size))


def title_font(size: int = 10) -> ImageFont.ImageFont:
    """DejaVu Sans (system or matplotlib's copy), which has Greek letters such as λ; Pillow's
    default font draws them as boxes and is the fallback."""
    candidates = ['DejaVuSans.ttf']
    try:
        import matplotlib
        candidates.append(osp.join(matplotlib.get_data_path(), 'fonts', 'ttf', 'DejaVuSans.ttf'))
    except ImportError:
        pass
    for name in candidates:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def grid_image(rows: List[List[np.ndarray]], titles: Sequence[str] = (), cell: int = 112,
               pad: int = 4) -> np.ndarray:
    """``rows`` of equally many (H, W, 3) uint8 images as one (14 + R * (cell + pad) + pad,
    C * (cell + pad) + pad, 3) uint8 grid on white, each resized (nearest) to ``cell`` pixels,
    with column titles in a 14-pixel header."""
    n_cols = len(rows[0])
    header = 14
    grid = Image.new('RGB', (n_cols * (cell + pad) + pad, header + len(rows) * (cell + pad) + pad),
                     'white')
    draw = ImageDraw.Draw(grid)
    font = title_font()
    for c, title in enumerate(titles[:n_cols]):
        draw.text((pad + c * (cell + pad), 1), title, fill='black', font=font)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            tile = Image.fromarray(img).resize((cell, cell), Image.NEAREST)
            grid.paste(tile, (pad + c * (cell + pad), header + pad + r * (cell + pad)))
    return np.array(grid)


def save_grid(rows: List[List[np.ndarray]], path: str, titles: Sequence[str] = (),
              cell: int = 112, pad: int = 4) -> None:
    """Save :func:`grid_image` of ``rows`` as a PNG at ``path``."""
    Image.fromarray(grid_image(rows, titles, cell, pad)).save(path)
