from .reconstruction import mae_reconstruct, render_mae_reconstructions, save_grid

__all__ = ['mae_reconstruct', 'render_mae_reconstructions', 'save_grid']
