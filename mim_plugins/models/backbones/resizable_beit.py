"""The stock ``BEiTViT``, loading relative position tables at another input size on SciPy >= 1.14.

A BEiT checkpoint with relative position bias (mmpretrain's own BEiT pretraining: one shared
table; or one per block) loads into a ``BEiTViT`` of another input size (224x224 pretraining,
640x640 segmentation crops) only after each table is resized to the new window. ``BEiTViT``
does that in a load pre-hook with SciPy's ``interp2d``, removed in SciPy 1.14, so the load fails.
``ResizableBEiTViT`` is ``BEiTViT`` with that pre-hook on
:func:`~.rel_pos_bias.resize_relative_position_bias_table`; everything else, and every
parameter name, is the stock class.
"""
from typing import Dict

from mmengine.logging import print_log
from mmpretrain.models.backbones import BEiTViT
from mmpretrain.registry import MODELS

from .rel_pos_bias import resize_beit_table

SHARED = 'rel_pos_bias.relative_position_bias_table'


@MODELS.register_module()
class ResizableBEiTViT(BEiTViT):
    """``BEiTViT`` whose relative position tables resize with current SciPy (same arguments)."""

    def _prepare_relative_position_bias_table(self, state_dict: Dict, prefix: str, *args,
                                              **kwargs) -> None:
        """Load pre-hook (``BEiTViT.__init__`` registers the method of this name): with
        ``use_rel_pos_bias``, a checkpoint's shared table ``(S**2 + 3, heads)`` becomes each
        block's; then every table of the checkpoint with another number of rows than the
        model's is resized (:func:`~.rel_pos_bias.resize_beit_table`), and its index buffer
        dropped so that the model keeps the one built for its window. Keys are read under
        ``prefix``, also the shared one (the stock hook looks for that one unprefixed)."""
        if self.use_rel_pos_bias and prefix + SHARED in state_dict:
            shared = state_dict.pop(prefix + SHARED)
            state_dict.pop(prefix + SHARED.replace('bias_table', 'index'), None)
            for i in range(self.num_layers):
                state_dict[f'{prefix}layers.{i}.attn.relative_position_bias_table'] = shared.clone()
            print_log(f'Copied the shared relative position table to each of the {self.num_layers}'
                      ' blocks.', logger='current')
        resized = []
        for name, current in self.state_dict().items():
            key = prefix + name
            if ('relative_position_bias_table' in name and key in state_dict
                    and state_dict[key].shape[0] != current.shape[0]):
                resized.append(f'{key} ({state_dict[key].shape[0]} -> {current.shape[0]} rows)')
                state_dict[key] = resize_beit_table(state_dict[key], current.shape[0])
                state_dict.pop(key.replace('bias_table', 'index'), None)
        if resized:
            print_log(f'Resized the relative position tables to the model\'s window: '
                      f'{"; ".join(resized)}', logger='current')
