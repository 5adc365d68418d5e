"""Images read outside a data pipeline (figures, the web demo, part learning) exactly as the
training pipeline reads them."""
import os.path as osp

import numpy as np

from ..utils.errors import MissingFileError, UserInputError


def read_rgb(path: str, name: str = '') -> np.ndarray:
    """The image file ``path`` as (H, W, 3) uint8 RGB, decoded exactly as training decodes it:
    by the configs' ``LoadImageFromFile`` (mmcv, cv2 backend), so a 16-bit PNG is scaled to 8
    bits (PIL's ``convert('RGB')`` clips it to white), grey and palette images become three
    channels and EXIF orientation applies, as in training.

    ``name`` is how the message calls the file (default its path; the web demo passes the name
    the user uploaded, not the server's temporary path). Raises ``MissingFileError`` for a
    missing file and ``UserInputError`` for one that is not a decodable image.
    """
    from mmcv.transforms import LoadImageFromFile

    name = name or path
    if not osp.isfile(path):
        raise MissingFileError(f"Image '{name}' does not exist. Fix: check the path.")
    try:
        bgr = LoadImageFromFile()(dict(img_path=path))['img']
    except Exception as exc:  # noqa: BLE001  (cv2.error for 0 bytes, None for garbage, ...)
        raise UserInputError(
            f"Corrupt or unreadable image '{name}': it could not be decoded as an image "
            f'({type(exc).__name__}). Fix: use a PNG, JPEG, BMP, TIFF or WebP image file.'
        ) from None
    return np.ascontiguousarray(bgr[..., ::-1])
