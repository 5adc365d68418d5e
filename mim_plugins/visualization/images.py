"""Reading user images for the figures and the web demo, with one clear error per bad file."""
import os.path as osp

import numpy as np
from PIL import Image

from ..utils.errors import MissingFileError, UserInputError


def read_rgb(path: str, name: str = '') -> np.ndarray:
    """The image file ``path`` as (H, W, 3) uint8 RGB (grayscale and palette images converted).

    ``name`` is how the message calls the file (default its path; the web demo passes the name
    the user uploaded, not the server's temporary path). Raises ``MissingFileError`` for a
    missing file and ``UserInputError`` for one that is not a decodable image.
    """
    name = name or path
    if not osp.isfile(path):
        raise MissingFileError(f"Image '{name}' does not exist. Fix: check the path.")
    try:
        with Image.open(path) as img:
            return np.array(img.convert('RGB'))
    except Exception as exc:  # noqa: BLE001  (PIL raises many types for a broken file)
        raise UserInputError(
            f"Corrupt or unreadable image '{name}': it could not be decoded as an image "
            f'({type(exc).__name__}). Fix: use a PNG, JPEG, BMP, TIFF or WebP image file.'
        ) from None


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
