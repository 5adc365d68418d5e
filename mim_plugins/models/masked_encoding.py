"""The one declared call between a masked encoder and the algorithm that trains it.

Every masked backbone answers ``encode(images, mask, input_mask) -> MaskedEncoding``: ours
(``SemMAEViT``, ``BottleneckMAEViT``, ``BottleneckMaskFeatViT``, ``BottleneckBEiTViT``) inherit
:class:`MaskedEncoder` and implement it; mmpretrain's ``BEiTPretrainViT`` / ``MaskFeatViT``
answer through :class:`StockMaskedEncoder`, a thin adapter around their ``forward(x, mask)``.
Algorithms, necks and heads read the encoding's fields, never the backbone's type or methods.
A caller that reads only ``predicted`` says so (``main=False``), and an encoder may then skip the
work only ``main`` needs (``MaskedBEiTViT`` runs its last layer on the predicted rows alone).

Rows stay compact: ``predicted`` holds only the rows at the predicted patches; no layout with a
row per patch is built to be gathered again. Masks stay bool, and the number of cls tokens is a
Python int fixed by the backbone's configuration (no ``int()`` on a tensor, no device sync).
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..masking import mask_to_indices


@dataclass(frozen=True)
class MaskedEncoding:
    """What one masked forward gives the algorithm.

    Attributes:
        main: ``(B, T + N, C)``, ``T = num_cls`` cls tokens then ``N`` patch rows of the main
            stream (the visible patches for ours; every patch, mask tokens included, for a stock
            single-sequence encoder), after the final norm; None when the caller asked for
            ``predicted`` alone (``encode(..., main=False)``) and the encoder skipped it.
        hidden: ``(B, L)`` bool, True = the patch's pixels never reached the main stream.
        num_cls: ``T``, from the backbone's configuration.
        predicted: ``(B, M, C)`` the encoder's rows at the ``M`` predicted patches in ascending
            patch order, or None when the encoder predicts nothing (MAE: the decoder does).
        predicted_ids: ``(B, M)`` int64 patch index of each ``predicted`` row.
        main_mask: ``(B, N)`` bool, True = a row of ``main`` that is a mask token (a stock
            encoder's); None = every patch row of ``main`` was computed from a visible patch.
        ids_restore: ``(B, L)`` MAE's order of ``main``'s patch rows (MAE-family encoders).
    """
    main: Optional[Tensor]
    hidden: Tensor
    num_cls: int
    predicted: Optional[Tensor] = None
    predicted_ids: Optional[Tensor] = None
    main_mask: Optional[Tensor] = None
    ids_restore: Optional[Tensor] = None


class MaskedEncoder:
    """The contract: put before the stock backbone class in the bases and implement ``encode``.

    ``separate_masks``: whether ``encode`` hides ``input_mask`` from the main stream while
    predicting ``mask`` (separate masks), i.e. whether the algorithm reads ``input_mask``.
    """

    separate_masks = True

    def encode(self, x: Tensor, mask: Optional[Tensor], input_mask: Optional[Tensor] = None,
               main: bool = True) -> MaskedEncoding:
        """Encode images ``x`` ``(B, 3, H, W)`` with predicted patches ``mask`` ``(B, L)`` bool
        (None: the encoder draws its own, MAE) and the patches ``input_mask`` hides;
        ``main=False``: the caller reads only ``predicted`` (the encoder may skip ``main``)."""
        raise NotImplementedError


class StockMaskedEncoder(MaskedEncoder):
    """Adapter for a stock backbone whose ``forward(x, mask)`` puts a mask token at every
    predicted patch and returns ``(B, 1 + L, C)`` (or a tuple ending with it), as mmpretrain's
    ``BEiTPretrainViT`` and ``MaskFeatViT`` do. Not a module: it only calls the backbone."""

    separate_masks = False

    def __init__(self, backbone: nn.Module) -> None:
        self.backbone = backbone

    def encode(self, x: Tensor, mask: Optional[Tensor], input_mask: Optional[Tensor] = None,
               main: bool = True) -> MaskedEncoding:
        if input_mask is not None:
            raise ValueError(
                f'the data samples carry input_mask (separate masks), but '
                f'{type(self.backbone).__name__} hides exactly the predicted patches. Fix: drop '
                'input_mask_generator, or use the bottleneck backbone (BottleneckBEiTViT / '
                'BottleneckMaskFeatViT).')
        out = self.backbone(x, mask)
        full = out[-1] if isinstance(out, tuple) else out  # BEiT returns a 1-tuple
        _, ids = mask_to_indices(mask)
        return MaskedEncoding(full, mask, 1, predicted=gather_tokens(full[:, 1:], ids),
                              predicted_ids=ids, main_mask=mask)


def mask_token_sequence(patches: Tensor, mask: Tensor, mask_token: Tensor,
                        cls_token: Tensor) -> Tensor:
    """``[cls, the patches with ``mask_token`` at each predicted one]`` ``(B, 1 + L, C)`` from
    ``patches`` ``(B, L, C)`` and ``mask`` ``(B, L)`` bool (BEiT's and MaskFeat's input)."""
    patches = torch.where(mask.unsqueeze(-1), mask_token.to(patches.dtype), patches)
    return torch.cat([cls_token.expand(len(patches), -1, -1), patches], 1)


def single_sequence_encoding(seq: Tensor, mask: Tensor,
                             last_layer: Callable[[Tensor, Optional[Tensor]], Tensor],
                             final_norm: Callable[[Tensor], Tensor],
                             main: bool = True) -> MaskedEncoding:
    """The encoding of a single-sequence encoder (BEiT's, MaskFeat's: ``[cls, a row per patch]``,
    a mask token at each predicted patch) from ``seq`` ``(B, 1 + L, C)`` before its last layer.

    ``last_layer(seq, rows)``: the last layer's output at ``rows`` ``(B, M)`` (None: all rows);
    ``main=False`` runs it at the predicted patches' rows alone and leaves ``main`` None.
    """
    _, ids = mask_to_indices(mask)
    if main:
        out = final_norm(last_layer(seq, None))
        return MaskedEncoding(out, mask, 1, predicted=gather_tokens(out[:, 1:], ids),
                              predicted_ids=ids, main_mask=mask)
    predicted = final_norm(last_layer(seq, ids + 1))  # row 0 is the cls token
    return MaskedEncoding(None, mask, 1, predicted=predicted, predicted_ids=ids, main_mask=mask)


def masked_encoder(backbone: nn.Module) -> MaskedEncoder:
    """``backbone`` itself when it declares the contract, else the stock adapter around it."""
    return backbone if isinstance(backbone, MaskedEncoder) else StockMaskedEncoder(backbone)


def gather_tokens(tokens: Tensor, ids: Tensor) -> Tensor:
    """Rows ``ids`` ``(B, K)`` of ``tokens`` ``(B, L, C)``, as ``(B, K, C)``."""
    return tokens.gather(1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def scatter_rows(rows: Tensor, ids: Tensor, length: int) -> Tensor:
    """``(B, L, D)`` zeros holding ``rows`` ``(B, K, D)`` at patches ``ids`` ``(B, K)`` (for
    figures that draw predictions on the whole grid)."""
    out = rows.new_zeros(rows.shape[0], length, rows.shape[-1])
    return out.scatter(1, ids.unsqueeze(-1).expand_as(rows), rows)


def need_mask(mask: Optional[Tensor], algorithm: str) -> Tensor:
    """``mask`` or a ``ValueError`` saying where masks come from."""
    if mask is None:
        raise ValueError(f'{algorithm} predicts the patches of data_sample.mask, but the batch '
                         'carries none. Fix: data_preprocessor=dict(type='
                         "'MaskingDataPreprocessor', ...) or a mask generator in the pipeline.")
    return mask


def check_patch_mask(mask: Tensor, batch: int, num_patches: int, what: str = 'mask') -> Tensor:
    """``mask`` ``(B, L)`` or ``(B, h, w)`` bool as ``(B, L)``; a ``ValueError`` naming the
    shapes otherwise."""
    if mask.dtype != torch.bool or len(mask) != batch or mask[0].numel() != num_patches:
        raise ValueError(f'the {what} must be bool ({batch}, {num_patches}) (batch, patches), '
                         f'got {mask.dtype} {tuple(mask.shape)}')
    return mask.flatten(1)


def restore_ids(hidden: Tensor) -> Tensor:
    """MAE's ``ids_restore`` ``(B, L)`` for a bool mask ``(B, L)``: visible patches first, each
    group in ascending order."""
    ids_keep, ids_hidden = mask_to_indices(hidden)
    return torch.cat([ids_keep, ids_hidden], 1).argsort(1)
