from .attention import attention_maps, query_attention, render_attention
from .images import save_grid
from .loading import can_reconstruct, load_model, masked_algorithm
from .part_masks import colorize_parts, masked_image, overlay_parts, render_semmae_masks
from .reconstruction import reconstruction_columns, render_mae_reconstructions

__all__ = ['reconstruction_columns', 'render_mae_reconstructions', 'save_grid',
           'colorize_parts', 'overlay_parts', 'masked_image', 'render_semmae_masks',
           'attention_maps', 'query_attention', 'render_attention', 'load_model',
           'masked_algorithm', 'can_reconstruct']
