"""tools/dist_train.sh with 2 processes trains the same model as tools/train.py with 1 process
and the same global batch (2 x 4 images vs 1 x 8): MAE pretraining (epoch-based) and UperNet
segmentation (iteration-based, at the end of this file).

What makes the two runs comparable: the sampler shuffles with one seed shared by every rank
(rank r takes every 2nd index from r), so each global batch holds the same 8 images in both
runs; DDP averages the two half-batch gradients, which equals the full-batch gradient because
every image masks the same number of patches (the loss is a mean over masked patches). The
randomness inside a batch is made a function of the image alone: no random crop, and a mask
seeded by the sample index (``SampleSeededMask`` below) for the MAE encoder that takes given
masks (``SemMAE``); MAE's own masking draws from each process's generator, so its masks could
never match across world sizes. What remains is floating-point summation order.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmcv.transforms import BaseTransform
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS, TRANSFORMS

from conftest import ROOT, run_env
from mim_plugins.masking import random_mask

# Multi-process training runs compared with single-process ones: the slow tier.
pytestmark = pytest.mark.slow

MAE_CFG = osp.join(ROOT, 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py')
GLOBAL_BATCH, EPOCHS = 8, 3  # 20 tiny images, drop_last: 2 iterations per epoch, 6 in all


@TRANSFORMS.register_module(force=True)
class SampleSeededMask(BaseTransform):
    """The MAE mask of the 7x7 grid (ratio 0.75), seeded by ``sample_idx``: the same for an
    image whatever the process, batch or world size."""

    def transform(self, results: dict) -> dict:
        generator = torch.Generator().manual_seed(int(results['sample_idx']))
        results['mask'] = random_mask(1, 49, 0.75, generator=generator).view(7, 7)
        return results


def write_config(tmp_path, tiny_data, batch_per_process: int) -> str:
    cfg = Config.fromfile(MAE_CFG)
    cfg.custom_imports.imports.append('test_distributed')
    cfg.model.type = 'SemMAE'
    cfg.model.backbone.type = 'SemMAEViT'
    cfg.train_dataloader.update(batch_size=batch_per_process, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.sampler.seed = 0  # the same permutation in every run and rank
    cfg.train_dataloader.dataset.data_root = tiny_data
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadImageFromFile'), dict(type='SampleSeededMask'),
        dict(type='PackInputs', algorithm_keys=['mask'])]
    cfg.train_cfg.max_epochs = EPOCHS
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    path = str(tmp_path / f'parity_b{batch_per_process}.py')
    cfg.dump(path)
    return path


def launch(*args) -> str:
    env = run_env()
    env['PYTHONPATH'] = os.pathsep.join([ROOT, osp.join(ROOT, 'tests')])
    out = subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def weights(work_dir, checkpoint) -> dict:
    """The state dict of ``epoch_N.pth`` (``checkpoint`` an int) or of the named file."""
    name = f'epoch_{checkpoint}.pth' if isinstance(checkpoint, int) else checkpoint
    return torch.load(osp.join(work_dir, name), map_location='cpu',
                      weights_only=False)['state_dict']


def largest_gap(a: dict, b: dict) -> float:
    """Largest weight difference, leaving out the attention key biases: softmax ignores a shift
    shared by a row of logits, so their gradient is 0 up to float noise, which AdamW scales up
    to lr-sized steps that differ between any two runs; they change no output."""
    gaps = []
    for key in a:
        diff = (a[key] - b[key]).abs()
        if key.endswith('qkv.bias'):
            query, _, value = diff.chunk(3)
            diff = torch.cat([query, value])
        gaps.append(diff.max().item())
    return max(gaps)


def loss_on_all_images(config: str, state_dict: dict) -> float:
    """The model's loss on the 20 training images with their seeded masks, in one batch."""
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    model.load_state_dict(state_dict)
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    data = model.data_preprocessor(default_collate([dataset[i] for i in range(len(dataset))]),
                                   True)
    with torch.no_grad():
        return float(model(**data, mode='loss')['loss'])


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_data):
    one, two = tmp_path / 'one', tmp_path / 'two'
    cfg_one = write_config(tmp_path, tiny_data, GLOBAL_BATCH)
    launch(sys.executable, 'tools/train.py', cfg_one, '--work-dir', str(one))
    cfg_two = write_config(tmp_path, tiny_data, GLOBAL_BATCH // 2)
    log = launch('bash', 'tools/dist_train.sh', cfg_two, '2', '--work-dir', str(two))
    assert 'GPU number: 2' in log and 'Epoch(train) [3][2/2]' in log

    first, end_one, end_two = weights(one, 1), weights(one, EPOCHS), weights(two, EPOCHS)
    moved, gap = largest_gap(end_one, first), largest_gap(end_one, end_two)
    # The last 4 iterations moved the weights by up to ~6e-3; the two runs differ by float
    # rounding only (~5e-7 measured). A run on other batches ends ~2e-2 away (measured: one
    # process with batch 4), so a rank missing the other's gradient would fail by far.
    assert moved > 1e-3 and gap < 1e-5, (moved, gap)

    loss_one = loss_on_all_images(cfg_one, end_one)
    loss_two = loss_on_all_images(cfg_one, end_two)
    loss_start = loss_on_all_images(cfg_one, first)
    assert loss_one < loss_start  # it trained
    assert abs(loss_one - loss_two) < 1e-5 * loss_one, (loss_one, loss_two)


# ----- segmentation: UperNet (iteration-based loop, InfiniteSampler) -----

SEG_CFG = osp.join(ROOT, 'configs_seg/mae/mae-tiny-p4_upernet_1xb16-300it_mnist5k-seg-28x28.py')
SEG_ITERS = 4
# Group norm instead of the config's SyncBN: SyncBN needs CUDA, and without it (gloo on CPU) each
# process normalises over its own half-batch, a real difference from one process, not rounding.
GROUP_NORM = dict(type='GN', num_groups=8, requires_grad=True)


@pytest.fixture(scope='module')
def digit_seg_data(tmp_path_factory) -> str:
    from mim_plugins.datasets.seg_data import prepare_mnist_seg
    root = str(tmp_path_factory.mktemp('mnist_seg'))
    prepare_mnist_seg(root, num_train=16, num_val=2)
    return root


def write_seg_config(tmp_path, data_root: str, batch_per_process: int) -> str:
    """The demo's UperNet from scratch, with nothing random inside a batch: the pipeline has no
    random transform already; no dropout (the heads' 0.1) and no drop path; group norm. SGD
    instead of AdamW (same layer decay): Adam divides by a gradient's running size, so a weight
    whose gradient is 0 up to rounding (a convolution before group norm, which ignores the scale
    of its output) moves by lr-sized steps signed by that rounding; SGD moves each weight in
    proportion to its gradient, so the weights compare the gradients themselves."""
    cfg = Config.fromfile(SEG_CFG)
    cfg.model.backbone.init_cfg = None
    cfg.model.neck.norm_cfg = GROUP_NORM
    for head in (cfg.model.decode_head, cfg.model.auxiliary_head):
        head.update(norm_cfg=GROUP_NORM, dropout_ratio=0.0)
    cfg.train_dataloader.update(batch_size=batch_per_process, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.sampler.seed = 0  # InfiniteSampler: one permutation for every rank
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_cfg.update(max_iters=SEG_ITERS, val_interval=100)
    cfg.optim_wrapper.optimizer = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.05)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.checkpoint.update(interval=SEG_ITERS // 2, max_keep_ckpts=-1)
    cfg.default_hooks.logger.interval = 1
    path = str(tmp_path / f'seg_parity_b{batch_per_process}.py')
    cfg.dump(path)
    return path


def seg_loss(config: str, state_dict: dict) -> float:
    """The UperNet's loss (decode + auxiliary) on the 16 training images, in one batch."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS as SEG_DATASETS, MODELS as SEG_MODELS
    saved = dict(DefaultScope._instance_dict)
    try:
        init_default_scope('mmseg')
        cfg = Config.fromfile(config)
        model = SEG_MODELS.build(cfg.model)
        model.load_state_dict(state_dict)
        dataset = SEG_DATASETS.build(cfg.train_dataloader.dataset)
        data = model.data_preprocessor(default_collate([dataset[i] for i in range(16)]), True)
        model.eval()  # (nothing in it depends on the mode now: no dropout, no batch norm)
        with torch.no_grad():
            return float(sum(v for k, v in model(**data, mode='loss').items() if 'loss' in k))
    finally:
        DefaultScope._instance_dict = saved


def test_two_processes_match_one_for_segmentation(tmp_path, digit_seg_data):
    one, two = tmp_path / 'one', tmp_path / 'two'
    cfg_one = write_seg_config(tmp_path, digit_seg_data, GLOBAL_BATCH)
    launch(sys.executable, 'tools/train.py', cfg_one, '--work-dir', str(one), '--no-validate')
    cfg_two = write_seg_config(tmp_path, digit_seg_data, GLOBAL_BATCH // 2)
    log = launch('bash', 'tools/dist_train.sh', cfg_two, '2', '--work-dir', str(two),
                 '--no-validate')
    assert 'GPU number: 2' in log and f'Iter(train) [{SEG_ITERS}/{SEG_ITERS}]' in log

    half = f'iter_{SEG_ITERS // 2}.pth'
    first, end_one, end_two = (weights(one, half), weights(one, f'iter_{SEG_ITERS}.pth'),
                               weights(two, f'iter_{SEG_ITERS}.pth'))
    moved, gap = largest_gap(end_one, first), largest_gap(end_one, end_two)
    # Measured: the last 2 iterations moved the weights by up to ~1.2e-2, the two runs differ by
    # ~3e-8; one process on batches of 4 (other images per step) ends ~9e-3 away. The losses
    # average over every pixel, ignored ones included (mmseg's default), so two half-batch means
    # average to the full-batch mean.
    assert moved > 1e-3 and gap < 1e-5, (moved, gap)

    loss_one = seg_loss(cfg_one, end_one)
    loss_two = seg_loss(cfg_one, end_two)
    assert loss_one < seg_loss(cfg_one, first)  # it trained
    assert abs(loss_one - loss_two) < 1e-5 * loss_one, (loss_one, loss_two)
