"""One config's training step (forward, backward, optimizer update) on a generated batch."""
import copy
import time
from contextlib import contextmanager
from typing import List

import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope
from torch.utils.flop_counter import FlopCounterMode

from .peak import sync


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


class TrainStep:
    """``model.train_step(batch, optim_wrapper)`` of the config's model, as the runner calls it.

    Args:
        cfg: the config (model, optim_wrapper, default_scope, train_cfg).
        batch: a collated training batch (:func:`~.synthetic.generated_batch`).
        device: where the model runs; the data preprocessor moves the batch there.
        amp: bf16 autocast of the forward pass.

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
        optim.type = AutocastOptimWrapper if amp else 'OptimWrapper'
        if amp:
            optim.device_type = device.type
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

    def optimizer_time(self, steps: int) -> List[float]:
        """Seconds of each of ``steps`` optimizer updates alone (``optim_wrapper.step``: gradient
        clipping if the config has it, then the optimizer), on gradients set to a constant: the
        part of a step that :meth:`flops` leaves out. It moves the weights; time steps first."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        seconds = []
        for _ in range(steps):
            for param in params:
                param.grad = torch.full_like(param, 1e-3)
            sync(self.device)
            start = time.perf_counter()
            self.optim_wrapper.step()
            sync(self.device)
            seconds.append(time.perf_counter() - start)
        self.optim_wrapper.zero_grad()
        return seconds

    def time(self, steps: int) -> List[float]:
        """Seconds of each of ``steps`` steps, each on a fresh copy of the batch (the data
        preprocessor writes masks into the samples; copying stays outside the timing)."""
        batches = [copy.deepcopy(self.batch) for _ in range(steps)]
        seconds = []
        for batch in batches:
            sync(self.device)
            start = time.perf_counter()
            self(batch)
            sync(self.device)
            seconds.append(time.perf_counter() - start)
        return seconds
