from .attention import attention_maps, query_attention, render_attention
from .part_masks import colorize_parts, masked_image, overlay_parts, render_semmae_masks
from .reconstruction import mae_reconstruct, render_mae_reconstructions, save_grid

__all__ = ['mae_reconstruct', 'render_mae_reconstructions', 'save_grid', 'colorize_parts',
           'overlay_parts', 'masked_image', 'render_semmae_masks', 'attention_maps',
           'query_attention', 'render_attention']
