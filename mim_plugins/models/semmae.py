"""MAE whose encoder takes a given mask (SemMAE's semantic-guided one, or any other).

Only the masking step changes: ``SemMAEViT`` keeps the visible tokens a given ``(B, L)`` bool mask
says instead of drawing random ones, and ``SemMAE`` passes it the mask that
``MaskingDataPreprocessor`` wrote into the data samples. Parameter names are mmpretrain's
``MAEViT``/``MAE`` ones, so the encoder loads into a stock ``VisionTransformer``
(``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``).
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmpretrain.models.selfsup.mae import MAE, MAEViT
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor

from ..masking import mask_to_indices


@MODELS.register_module()
class SemMAEViT(MAEViT):
    """``MAEViT`` whose ``forward(x, mask)`` also accepts a bool mask ``(B, L)``, ``True`` =
    masked; every row must mask the same number of patches. ``mask=True`` masks at random as
    ``MAEViT`` does, ``None``/``False`` runs the plain ViT."""

    _given_mask: Optional[Tensor] = None

    def forward(self, x: Tensor, mask: Union[bool, Tensor, None] = True
                ) -> Tuple[Tensor, Tensor, Tensor]:
        """Returns ``(latent (B, 1 + L - M, C), mask (B, L) float with 1 = masked,
        ids_restore (B, L))`` as ``MAEViT`` does, for the given or a random mask."""
        if not isinstance(mask, Tensor):
            return super().forward(x, mask)
        if mask.dtype != torch.bool or mask.shape != (x.shape[0], self.num_patches):
            raise ValueError(f'the mask must be bool ({x.shape[0]}, {self.num_patches}) '
                             f'(batch, patches), got {mask.dtype} {tuple(mask.shape)}')
        # MAEViT.forward embeds, masks through `random_masking`, then runs the layers; handing
        # the mask to `random_masking` keeps that forward, stock, for everything else.
        self._given_mask = mask
        try:
            return super().forward(x, True)
        finally:
            self._given_mask = None

    def random_masking(self, x: Tensor, mask_ratio: float = 0.75
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        """Visible tokens ``(B, L - M, C)`` of ``x`` ``(B, L, C)``, in ascending patch order,
        the float mask and ``ids_restore``; random unless a mask was given to ``forward``."""
        if self._given_mask is None:
            return super().random_masking(x, mask_ratio)
        ids_keep, ids_masked = mask_to_indices(self._given_mask)
        visible = x.gather(1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        ids_restore = torch.cat([ids_keep, ids_masked], 1).argsort(1)
        return visible, self._given_mask.float(), ids_restore


@MODELS.register_module()
class SemMAE(MAE):
    """MAE trained on the masks in ``data_sample.mask`` (``(H, W)`` bool, written by
    ``MaskingDataPreprocessor``); random MAE masking when the samples carry none. The backbone
    must accept a mask tensor, as ``SemMAEViT`` does."""

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """MAE's pixel loss on the masked patches of ``inputs`` ``(B, 3, H, W)``."""
        given = self.masks_from_samples(data_samples)
        latent, mask, ids_restore = self.backbone(inputs, mask=given)
        pred = self.neck(latent, ids_restore)
        return dict(loss=self.head.loss(pred, inputs, mask))

    @staticmethod
    def masks_from_samples(data_samples: Optional[List[DataSample]]) -> Union[bool, Tensor]:
        """``(B, L)`` bool from the samples' masks, or True (random masking) if none has one."""
        has = [sample is not None and 'mask' in sample for sample in data_samples or []]
        if not any(has):
            return True
        if not all(has):
            raise ValueError('only some data samples carry a mask; a batch is masked either '
                             'all by MaskingDataPreprocessor or all at random')
        return torch.stack([sample.mask.flatten() for sample in data_samples]).bool()
