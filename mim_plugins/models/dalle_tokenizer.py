"""BEiT's tokenizer asked the one thing BEiT reads: the token id at each predicted patch.

mmpretrain's ``DALL-E`` encoder returns logits ``(B, 8192, h, w)`` at every patch, and BEiT v1
keeps the argmax at the predicted ones. :class:`DALLETokenizer` (the same module, parameters and
checkpoints) answers :meth:`PatchTokenizer.tokens` with the same ids and less work: its convs run
channels-last (the layout oneDNN and cuDNN convolve fastest), and the 8192-way output conv, a
``1x1`` conv, is a matrix product over the predicted patches alone (about 40% of them). Any
other target generator with stock logits answers through :class:`StockPatchTokenizer`.
"""
import torch
from mmpretrain.models.selfsup.cae import DALLEEncoder
from mmpretrain.registry import MODELS
from torch import Tensor, nn
from torch.nn import functional as F

from .masked_encoding import gather_tokens


class PatchTokenizer:
    """The contract: put before the stock tokenizer class in the bases, implement ``tokens``."""

    def tokens(self, images: Tensor, ids: Tensor) -> Tensor:
        """The ``(B, M)`` int64 token ids of images ``(B, 3, H, W)`` at patches ``ids``
        ``(B, M)`` (row-major indices into the tokenizer's ``h x w`` grid)."""
        raise NotImplementedError


class StockPatchTokenizer(PatchTokenizer):
    """Adapter for a target generator whose ``forward`` gives logits ``(B, V, h, w)``: the
    argmax over ``V`` at every patch, then the patches asked for. Not a module."""

    def __init__(self, generator: nn.Module) -> None:
        self.generator = generator

    def tokens(self, images: Tensor, ids: Tensor) -> Tensor:
        return self.generator(images).argmax(1).flatten(1).gather(1, ids)


def patch_tokenizer(generator: nn.Module) -> PatchTokenizer:
    """``generator`` itself when it declares the contract, else the stock adapter around it."""
    return generator if isinstance(generator, PatchTokenizer) else StockPatchTokenizer(generator)


@MODELS.register_module()
class DALLETokenizer(PatchTokenizer, DALLEEncoder):
    """mmpretrain's ``DALL-E`` encoder (``forward`` unchanged, the same state dict) with the
    fast :meth:`tokens`. Each stock conv keeps its own precision rule (fp16 on a GPU, the output
    conv fp32)."""

    def tokens(self, images: Tensor, ids: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != self.input_channels:
            raise ValueError(f'the tokenizer takes images (B, {self.input_channels}, H, W), got '
                             f'{tuple(images.shape)}')
        hidden = self.blocks[:-1](images.float().contiguous(memory_format=torch.channels_last))
        rows = gather_tokens(hidden.flatten(2).transpose(1, 2), ids)  # (B, M, 8 * n_hid)
        head = self.blocks.output
        logits = F.linear(head.relu(rows).float(), head.conv.w.flatten(1), head.conv.b)
        return logits.argmax(-1)

