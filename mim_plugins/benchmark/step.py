"""One config's training step (forward, backward, optimizer update) on a generated batch."""
import copy
from contextlib import contextmanager
from functools import partial
from typing import List, Optional, Protocol

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from torch.utils.flop_counter import FlopCounterMode

from ..apis.common import amp_dtype
from .peak import timed


class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward pass (``optim_context``) runs under bf16 autocast on any
    device. mmengine's ``AmpOptimWrapper`` does this on GPU only; bf16 needs no loss scaling."""

    def __init__(self, device_type: str, **kwargs):
        super().__init__(**kwargs)
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast(self.device_type, torch.bfloat16):
            yield


class Timed(Protocol):
    """What the benchmark times and counts (:class:`TrainStep`,
    :class:`~.inference.InferenceStep`)."""
    batch_size: int
    device: torch.device

    def flops(self) -> int:
        """FLOPs of one step."""

    def time(self, steps: int) -> List[float]:
        """Seconds of each of ``steps`` steps."""


def step_amp_dtype(device: torch.device) -> torch.dtype:
    """The benchmark's ``--amp`` dtype: bf16 on CPU, and on a GPU the one ``--amp`` of
    tools/train.py picks (bf16 where native, else fp16 with loss scaling)."""
    return amp_dtype() if device.type == 'cuda' else torch.bfloat16


class TrainStep:
    """``model.train_step(batch, optim_wrapper)`` of the config's model, as the runner calls it.

    Args:
        cfg: the config (model, optim_wrapper, default_scope, train_cfg).
        batch: a collated training batch (:func:`~.synthetic.generated_batch`).
        device: where the model runs; the data preprocessor moves the batch there.
        amp: autocast of the forward pass, in :func:`step_amp_dtype` (``self.amp_dtype``;
            None without amp).

    :meth:`compile` swaps the model's children for ``torch.compile``d ones; count
    :meth:`flops` before, on the eager model.
    """

    def __init__(self, cfg: Config, batch: dict, device: torch.device, amp: bool = False):
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        self.device, self.batch = device, batch
        self.batch_size = len(batch['data_samples'])
        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner merges it
            model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
        self.model = MODELS.build(model_cfg).to(device).train()
        # λ-scheduled mask generators (SemMAE) need an epoch; the middle one is representative
        for generator in getattr(self.model.data_preprocessor, 'generators', []):
            generator.set_epoch(cfg.train_cfg.get('max_epochs', 2) // 2,
                                cfg.train_cfg.get('max_epochs', 2))
        optim = copy.deepcopy(cfg.optim_wrapper)
        for key in ('loss_scale', 'dtype', 'use_fsdp'):  # AmpOptimWrapper's own arguments
            optim.pop(key, None)
        self.amp_dtype = step_amp_dtype(device) if amp else None
        if self.amp_dtype == torch.bfloat16:
            optim.update(type=AutocastOptimWrapper, device_type=device.type)
        elif self.amp_dtype == torch.float16:  # a GPU without native bf16
            optim.update(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
        else:
            optim.type = 'OptimWrapper'
        self._optim_cfg = optim
        self.optim_wrapper = build_optim_wrapper(self.model, optim)

    def rebuild_optimizer(self, **options) -> None:
        """A fresh optimizer wrapper of the config's, with ``options`` added to the optimizer's
        arguments (e.g. ``fused=True`` or ``foreach=True`` for AdamW); its state starts anew."""
        optim = copy.deepcopy(self._optim_cfg)
        optim.optimizer.update(options)
        self.optim_wrapper = build_optim_wrapper(self.model, optim)

    def __call__(self, batch: dict) -> dict:
        return self.model.train_step(batch, optim_wrapper=self.optim_wrapper)

    def flops(self) -> int:
        """FLOPs of one step (forward + backward; the optimizer's are negligible), counted by
        ``torch.utils.flop_counter`` on the eager model."""
        with FlopCounterMode(display=False) as counter:
            self(copy.deepcopy(self.batch))
        return counter.get_total_flops()

    def compile(self) -> None:
        """``torch.compile`` every child module except the data preprocessor."""
        for name, child in list(self.model.named_children()):
            if name != 'data_preprocessor':
                setattr(self.model, name, torch.compile(child))

    def compile_blocks(self) -> int:
        """``torch.compile`` each block of every stack of alike blocks (a ``ModuleList`` of two
        or more modules of one class: the encoder's, the decoder's, a bottleneck's layers) in
        place, with static shapes; returns how many. Regional compilation: the blocks of a stack
        share one compiled graph, so compiling costs a few graphs, not the whole model's; the
        rest of the step (embeddings, masking, losses) stays eager."""
        compiled: List[str] = []  # prefixes of compiled blocks: nothing inside them again
        for name, module in self.model.named_modules():
            if isinstance(module, torch.nn.ModuleList) and len(module) > 1 \
                    and len({type(block) for block in module}) == 1 \
                    and not any(name.startswith(prefix) for prefix in compiled):
                for i, block in enumerate(module):
                    block.compile(dynamic=False)
                    compiled.append(f'{name}.{i}.')
        return len(compiled)

    def optimizer_time(self, steps: int) -> List[float]:
        """Seconds of each of ``steps`` optimizer updates alone (``optim_wrapper.step``: gradient
        clipping if the config has it, then the optimizer), on gradients set to a constant: the
        part of a step that :meth:`flops` leaves out. It moves the weights; time steps first."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        seconds = []
        for _ in range(steps):
            for param in params:
                param.grad = torch.full_like(param, 1e-3)
            seconds.append(timed(self.optim_wrapper.step, self.device)[0])
        self.optim_wrapper.zero_grad()
        return seconds

    def time(self, steps: int, losses: Optional[List[float]] = None) -> List[float]:
        """Seconds of each of ``steps`` steps, each on a fresh copy of the batch (the data
        preprocessor writes masks into the samples; copying stays outside the timing). Each
        step's total loss is appended to ``losses`` when given (read after the timing)."""
        batches = [copy.deepcopy(self.batch) for _ in range(steps)]
        seconds = []
        for batch in batches:
            second, log_vars = timed(partial(self, batch), self.device)
            seconds.append(second)
            if losses is not None:
                losses.append(log_vars['loss'].detach().item())
        return seconds
