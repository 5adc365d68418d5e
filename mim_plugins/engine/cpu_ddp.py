"""Distributed data parallel on CPU (gloo), so ``dist_train.sh CONFIG N`` runs on a machine
without a GPU. mmengine's runner always passes ``device_ids=[LOCAL_RANK]``, which torch's DDP
rejects for a CPU module, and SyncBN layers need CUDA; this wrapper fixes both."""
import torch
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for a model whose parameters live on the CPU."""

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs) -> None:
        # gloo's all-reduce keeps BN statistics per process, as DDP without SyncBN does on GPU.
        super().__init__(module=revert_sync_batchnorm(module), device_ids=None, **kwargs)
