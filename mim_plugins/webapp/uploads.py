"""Uploaded images: checked by content, limited in size, kept in a folder of their own that
is deleted when the server stops."""
import contextlib
import os
import shutil
import tempfile
import warnings
from typing import Iterator

from PIL import Image

from ..utils.errors import UserInputError

MAX_BYTES = 10 * 2**20  # a photograph; the models take 28..224-pixel inputs
MAX_PIXELS = 4096 * 4096
# What PIL may decode an upload as: the formats training reads (cv2) too.
FORMATS = ('PNG', 'JPEG', 'BMP', 'TIFF', 'WEBP')


def check_image(path: str, name: str, max_bytes: int = MAX_BYTES,
                max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an upload that is not one image of at most ``max_bytes`` bytes and
    ``max_pixels`` pixels, by decoding it with PIL (its name and extension mean nothing)."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise UserInputError(f"Image '{name}' is {size} bytes; the demo takes uploads up to "
                             f'{max_bytes} bytes ({max_bytes / 2**20:.3g} MB). Fix: upload a '
                             'smaller image.')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as img:
                pixels = img.width * img.height
                if pixels > max_pixels:
                    raise UserInputError(
                        f"Image '{name}' is {img.width}x{img.height} pixels; the demo takes up "
                        f'to {max_pixels} pixels. Fix: upload a smaller image.')
                img.load()
    except UserInputError:
        raise
    except Exception as exc:  # noqa: BLE001  (PIL raises many types for a non-image)
        raise UserInputError(
            f"Corrupt or unreadable image '{name}': its content is not an image the demo reads "
            f'({type(exc).__name__}), whatever its name. Fix: upload a '
            f'{", ".join(FORMATS[:-1])} or {FORMATS[-1]} image.') from None


@contextlib.contextmanager
def private_upload_dir() -> Iterator[str]:
    """A new temporary folder for Gradio's uploads and cache (``GRADIO_TEMP_DIR``, which
    Gradio reads when the page and the server are built), deleted on exit."""
    folder = tempfile.mkdtemp(prefix='mim_web_demo_')
    previous = os.environ.get('GRADIO_TEMP_DIR')
    os.environ['GRADIO_TEMP_DIR'] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop('GRADIO_TEMP_DIR', None)
        else:
            os.environ['GRADIO_TEMP_DIR'] = previous
        shutil.rmtree(folder, ignore_errors=True)
