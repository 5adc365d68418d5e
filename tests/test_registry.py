"""Importing mim_plugins registers its modules; every one builds from a minimal config."""
import importlib
import inspect
import os

import pytest
import torch
from mmengine.registry import Registry

import mim_plugins  # noqa: F401


def registered_mim_plugins():
    """(registry, name) for every class that a mim_plugins module registered anywhere."""
    found = set()
    for package in ('mmengine.registry', 'mmpretrain.registry', 'mmseg.registry'):
        for reg in vars(importlib.import_module(package)).values():
            if isinstance(reg, Registry):
                for name, obj in reg.module_dict.items():
                    if inspect.getmodule(obj).__name__.startswith('mim_plugins'):
                        found.add((reg, name))
    return sorted(found, key=lambda x: (x[0].scope, x[0].name, x[1]))


def _ddp_wrapper_cfg():
    if not torch.distributed.is_initialized():
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault('MASTER_PORT', '29533')
        torch.distributed.init_process_group('gloo', rank=0, world_size=1)
    return dict(type='CPUDistributedDataParallel',
                module=torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.SyncBatchNorm(2)))


# name -> minimal config factory; a newly registered module without one fails the test below.
MINIMAL = {
    'CPUDistributedDataParallel': _ddp_wrapper_cfg,
}


def test_every_registered_module_has_a_minimal_config():
    names = {name for _, name in registered_mim_plugins()}
    assert names, 'importing mim_plugins registered nothing'
    assert names <= set(MINIMAL), f'add minimal configs for {names - set(MINIMAL)}'


@pytest.mark.parametrize('registry,name', registered_mim_plugins(),
                         ids=lambda v: v if isinstance(v, str) else f'{v.scope}.{v.name}')
def test_registered_module_builds(registry, name):
    obj = registry.build(MINIMAL[name]())
    assert type(obj).__name__ == name


def test_cpu_ddp_wrapper_reverts_syncbn_and_trains():
    from mmengine.registry import MODEL_WRAPPERS
    wrapper = MODEL_WRAPPERS.build(_ddp_wrapper_cfg())
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in wrapper.modules())
    out = wrapper(torch.randn(4, 2))
    out.sum().backward()
    assert wrapper.module[0].weight.grad is not None
