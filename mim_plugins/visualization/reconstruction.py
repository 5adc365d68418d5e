"""Original / masked / reconstruction / reconstruction+visible figures for MAE-family models."""
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

COLUMNS = ('original', 'masked', 'reconstruction', 'reconstruction + visible')


@torch.no_grad()
def mae_reconstruct(model: torch.nn.Module, inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Run an mmpretrain ``MAE`` (backbone, decoder neck, pixel head) on normalised images.

    Args:
        model: an ``MAE`` whose head has ``patchify``/``unpatchify``.
        inputs: (B, 3, H, W) images, normalised as the model's data preprocessor does.

    Returns:
        dict of (B, 3, H, W) tensors in the same normalised space: ``original``, ``masked``
        (removed patches zeroed), ``reconstruction`` and ``reconstruction + visible``; and
        ``mask`` (B, L), 1 = removed. With ``norm_pix`` the decoder predicts each patch
        normalised by its own mean/std, so those are restored from the original image: the
        figure shows the predicted structure, not predicted brightness.
    """
    model.eval()
    latent, mask, ids_restore = model.backbone(inputs)
    pred = model.neck(latent, ids_restore)  # (B, L, p*p*3)
    head = model.head
    if getattr(head, 'norm_pix', False):
        target = head.patchify(inputs)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    recon = head.unpatchify(pred)
    mask_img = head.unpatchify(mask.unsqueeze(-1).expand_as(pred).float())
    return {
        'original': inputs,
        'masked': inputs * (1 - mask_img),
        'reconstruction': recon,
        'reconstruction + visible': inputs * (1 - mask_img) + recon * mask_img,
        'mask': mask,
    }


def to_uint8(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(B, 3, H, W) normalised RGB -> (B, H, W, 3) uint8."""
    mean_t = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    pixels = (images.cpu() * std_t + mean_t).clamp(0, 255).round().byte()
    return pixels.permute(0, 2, 3, 1).numpy()


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


def save_grid(rows: List[List[np.ndarray]], path: str, titles: Sequence[str] = COLUMNS,
              cell: int = 112, pad: int = 4) -> None:
    """Save ``rows`` of equally many (H, W, 3) uint8 images as a PNG grid with column titles."""
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
    grid.save(path)


def render_mae_reconstructions(config: str, checkpoint: str, image_paths: Sequence[str],
                               out_file: str, seed: int = 0) -> None:
    """Load an MAE checkpoint with its config, mask ``image_paths`` at the config's ratio and save
    the original / masked / reconstruction / reconstruction+visible grid to ``out_file``."""
    from mmengine.config import Config
    from mmengine.dataset import Compose, default_collate
    from mmpretrain.apis import get_model
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = get_model(cfg, pretrained=checkpoint, device='cpu')
    size = cfg.model.backbone.img_size
    pipeline = Compose([dict(type='LoadImageFromFile'),
                        dict(type='Resize', scale=(size, size), backend='pillow'),
                        dict(type='PackInputs')])
    batch = [pipeline(dict(img_path=p)) for p in image_paths]
    inputs = model.data_preprocessor(default_collate(batch), False)['inputs']
    torch.manual_seed(seed)
    out = mae_reconstruct(model, inputs)
    pre = model.data_preprocessor
    mean, std = pre.mean.flatten().tolist(), pre.std.flatten().tolist()
    columns = [to_uint8(out[name], mean, std) for name in COLUMNS]
    save_grid([[col[i] for col in columns] for i in range(len(batch))], out_file)
