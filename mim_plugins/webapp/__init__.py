"""The interactive web demo (``python tools/web_demo.py``): masks, reconstructions, part maps
and attention of a pretrained checkpoint, on CPU. The inference lives in plain modules
(``views``, ``masks``, ``parts``, ``renderers``); only ``app`` imports Gradio."""
from .masks import STRATEGIES, draw_masks
from .renderers import DRAWERS, Rendered, render
from .views import PANELS, Request, Views, compute_views, examples

__all__ = ['STRATEGIES', 'draw_masks', 'DRAWERS', 'Rendered', 'render', 'PANELS', 'Request',
           'Views', 'compute_views', 'examples']
