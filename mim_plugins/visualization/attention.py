"""Self-attention maps of query patches in a pretrained ViT (the SemanticMIM figure).

The attention probabilities are not returned by mmpretrain's attention modules (they call a
fused ``scaled_dot_product_attention``), so a forward hook on the chosen layer's attention
module takes that module's input and recomputes ``softmax(q kᵀ · scale + bias)`` from the
module's own ``qkv`` weights; the backbone itself runs unchanged. Supported: mmpretrain's
``MultiheadAttention`` (``VisionTransformer``, ``MAEViT``, ``MaskFeatViT``, ...) and
``BEiTAttention`` (``BEiTViT``: q/v biases, its own and the shared relative position bias).
"""
import inspect
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmpretrain.models.utils.attention import BEiTAttention, MultiheadAttention
from PIL import Image, ImageDraw
from torch import Tensor, nn

from ..utils.errors import UserInputError
from .images import save_grid

QUERY_RED = (255, 0, 0)


def _split_heads(module: nn.Module, qkv: Tensor) -> Tuple[Tensor, Tensor]:
    """(B, N, 3C) fused projection -> q, k, each (B, heads, N, C / heads)."""
    batch, tokens, _ = qkv.shape
    qkv = qkv.reshape(batch, tokens, 3, module.num_heads, -1).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1]


def attention_probs(module: nn.Module, x: Tensor, rel_pos_bias: Optional[Tensor] = None
                    ) -> Tensor:
    """The attention probabilities ``module`` computes on its input ``x`` (B, N, C).

    Returns (B, heads, N, N); row ``i`` is query token ``i``'s distribution over the keys (sums
    to 1). ``rel_pos_bias`` (heads, N, N) is the shared relative position bias a ``BEiTViT``
    passes to every layer.
    """
    if isinstance(module, BEiTAttention):
        weight, bias = module.qkv.weight, module.qkv.bias
        if module.bias == 'qv_bias':  # BEiT learns q and v biases; k has none
            bias = torch.cat([module.q_bias, torch.zeros_like(module.v_bias), module.v_bias])
        q, k = _split_heads(module, nn.functional.linear(x, weight, bias))
        logits = (q * module.scale) @ k.transpose(-2, -1)
        table = module.relative_position_bias_table
        if table is not None:
            side = module.window_size[0] * module.window_size[1] + 1
            own = table[module.relative_position_index.view(-1)].view(side, side, -1)
            logits = logits + own.permute(2, 0, 1).unsqueeze(0)
        if rel_pos_bias is not None:
            logits = logits + rel_pos_bias
        return logits.softmax(dim=-1)
    if isinstance(module, MultiheadAttention):
        q, k = _split_heads(module, module.qkv(x))
        # mmpretrain 1.2 scales by head_dims ** -0.5 even when qk_scale is set (its qk_scale
        # branch passes that same value), so this is what the module really computes.
        logits = (q @ k.transpose(-2, -1)) * module.head_dims ** -0.5
        return logits.softmax(dim=-1)
    raise UserInputError(
        f'Attention maps are read from mmpretrain MultiheadAttention or BEiTAttention modules; '
        f'this backbone uses {type(module).__name__}. Fix: pass a ViT config (VisionTransformer, '
        'MAEViT, MaskFeatViT, BEiTViT, or one derived from them).')


def run_unmasked(backbone: nn.Module, inputs: Tensor) -> None:
    """Run the plain ViT on whole images: pretraining backbones (MAEViT, BEiTPretrainViT,
    MaskFeatViT, ours) skip their masking when given ``mask=None``."""
    if 'mask' in inspect.signature(backbone.forward).parameters:
        backbone(inputs, mask=None)
    else:
        backbone(inputs)


@torch.no_grad()
def attention_maps(backbone: nn.Module, inputs: Tensor, layer: int = -1) -> Tensor:
    """Attention probabilities of transformer layer ``layer`` of ``backbone`` on ``inputs``.

    Args:
        backbone: an mmpretrain ViT with ``layers[i].attn``, in eval mode.
        inputs: (B, 3, H, W) normalised images, whole (no patch masked).
        layer: index into ``backbone.layers`` (negative counts from the end; -1 = last).

    Returns:
        (B, heads, N, N) float, N = extra tokens (cls) + patches, patches in raster order.
    """
    layers = getattr(backbone, 'layers', None)
    if layers is None or not hasattr(layers[0], 'attn'):
        raise UserInputError(f'{type(backbone).__name__} has no transformer layers with an '
                             '`attn` module. Fix: pass a ViT config.')
    if not -len(layers) <= layer < len(layers):
        raise UserInputError(f'Layer {layer} does not exist: the ViT has {len(layers)} layers. '
                             f'Fix: pass a layer in 0..{len(layers) - 1} (or -1, the last).')
    captured: List[Tensor] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Tensor) -> None:
        bias = kwargs.get('rel_pos_bias', args[1] if len(args) > 1 else None)
        captured.append(attention_probs(module, args[0], bias))

    handle = layers[layer].attn.register_forward_hook(hook, with_kwargs=True)
    try:
        run_unmasked(backbone, inputs)
    finally:
        handle.remove()
    return captured[0]


def patch_grid(backbone: nn.Module) -> Tuple[int, int]:
    """(h, w) token grid of the ViT's input size."""
    return tuple(backbone.patch_embed.init_out_size)


def check_query(query: Tuple[int, int], grid: Tuple[int, int]) -> None:
    """Raise ``UserInputError`` unless (row, col) ``query`` lies on the (h, w) ``grid``."""
    (h, w), (row, col) = grid, query
    if not (0 <= row < h and 0 <= col < w):
        raise UserInputError(f'Query patch ({row}, {col}) is outside the {h}x{w} patch grid. '
                             f'Fix: pass a row in 0..{h - 1} and a column in 0..{w - 1}.')


def query_attention(attn: Tensor, query: Tuple[int, int], grid: Tuple[int, int],
                    head: Optional[int] = None) -> Tensor:
    """How much the patch at ``query`` = (row, col) attends to every patch.

    Args:
        attn: (B, heads, N, N) from :func:`attention_maps`; the first ``N - h*w`` tokens are
            the extra (cls) tokens.
        query: the query patch, 0-based (row, col) on the ``grid`` (h, w).
        head: one head's map, or None for the mean over heads.

    Returns:
        (B, h, w): the query row's probabilities on the patch tokens (the mass it puts on the
        cls token is left out, so a map sums to 1 minus that mass).
    """
    check_query(query, grid)
    h, w = grid
    row, col = query
    extra = attn.shape[-1] - h * w
    if extra < 0:
        raise ValueError(f'{attn.shape[-1]} tokens cannot hold a {h}x{w} grid')
    probs = attn[:, :, extra + row * w + col, extra:]  # (B, heads, h*w)
    probs = probs.mean(1) if head is None else probs[:, head]
    return probs.reshape(-1, h, w)


def heatmap(values: np.ndarray, size: int, cmap: str = 'inferno') -> np.ndarray:
    """(h, w) float -> (size, size, 3) uint8, min-max scaled per map (a constant map is dark),
    one flat colour per patch."""
    import matplotlib

    values = np.asarray(values, dtype=np.float64)
    span = values.max() - values.min()
    scaled = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    colours = (matplotlib.colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)
    return np.array(Image.fromarray(colours).resize((size, size), Image.NEAREST))


def draw_query_box(image: np.ndarray, query: Tuple[int, int], grid: Tuple[int, int],
                   colour: Tuple[int, int, int] = QUERY_RED) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 with a box around patch ``query`` = (row, col)."""
    out = Image.fromarray(np.ascontiguousarray(image))
    height, width = image.shape[:2]
    (h, w), (row, col) = grid, query
    box = (col * width // w, row * height // h, (col + 1) * width // w - 1,
           (row + 1) * height // h - 1)
    ImageDraw.Draw(out).rectangle(box, outline=colour, width=max(1, min(height, width) // 100))
    return np.array(out)


def attention_overlay(image: np.ndarray, values: np.ndarray, query: Tuple[int, int],
                      alpha: float = 0.6) -> np.ndarray:
    """The heat map of ``values`` (h, w) blended over a gray copy of ``image`` (S, S, 3) uint8,
    with the query patch boxed in red: the web demo's single-panel view."""
    size = image.shape[0]
    gray = image.astype(np.float64).mean(-1, keepdims=True)
    blend = (1 - alpha) * gray + alpha * heatmap(values, size).astype(np.float64)
    return draw_query_box(blend.round().astype(np.uint8), query, values.shape)


def render_attention(config: str, checkpoint: str, image_paths: Sequence[str],
                     queries: Sequence[Tuple[int, int]], out_file: str, layer: int = -1,
                     cell: int = 112) -> int:
    """Save the attention figure: one row per (image, query), columns input with the query
    patch in a red box | attention of that query (mean over heads) | both overlaid.

    Returns the number of rows. Images are centre-cropped and resized to the ViT's input size.
    """
    from ..datasets.read_image import read_rgb
    from .images import check_size, square_resize
    from .loading import load_backbone, normalise

    backbone, preprocessor = load_backbone(config, checkpoint)
    grid = patch_grid(backbone)
    size = backbone.patch_embed.init_input_size[0]
    patch = size // grid[0]
    images = []
    for path in image_paths:
        rgb = read_rgb(path)
        check_size(rgb, size, patch, name=f"Image '{path}'")
        images.append(square_resize(rgb, size))
    for query in queries:
        check_query(query, grid)  # a bad query fails before the model runs
    attn = attention_maps(backbone, normalise(preprocessor, torch.from_numpy(np.stack(images))),
                          layer)
    n_layers = len(backbone.layers)
    rows = []
    for i, image in enumerate(images):
        big = np.array(Image.fromarray(image).resize((cell, cell), Image.NEAREST))
        for query in queries:
            values = query_attention(attn[i:i + 1], query, grid)[0].numpy()
            rows.append([draw_query_box(big, query, grid), heatmap(values, cell),
                         attention_overlay(big, values, query)])
    titles = ('query (red box)', f'attention, layer {layer % n_layers}', 'overlay')
    save_grid(rows, out_file, titles=titles, cell=cell)
    return len(rows)
