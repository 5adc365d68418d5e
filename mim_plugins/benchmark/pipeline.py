"""Data-pipeline throughput of one dataloader worker: the config's train pipeline, in this
process, on generated image files."""
import time
from typing import Callable, Optional, Sequence

import cv2
import torch
from mmengine.config import Config

from .synthetic import crop_size, num_classes, pipeline_for, train_dataset_cfg, write_images


def pipeline_throughput(cfg: Config, root: str, count: int = 64, warmup: int = 4,
                        ready: Optional[Callable[[], object]] = None) -> float:
    """Images per second through the train pipeline (load, decode, augment, pack) of ``count``
    generated images under ``root``, with one thread, as in a worker (mmengine sets OpenCV to
    0 extra threads, torch runs workers on one thread). ``ready`` is called right before the
    timing starts (e.g. a barrier's ``wait``, so that several processes time together)."""
    paths = write_images(root, count + warmup, crop_size(train_dataset_cfg(cfg).pipeline))
    pipeline = pipeline_for(cfg, root, paths)
    classes = num_classes(cfg)
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(0)
    try:
        _run(pipeline, paths[:warmup], classes)
        if ready is not None:
            ready()
        start = time.perf_counter()
        _run(pipeline, paths[warmup:], classes)
        return count / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)


def _run(pipeline, paths: Sequence[str], classes: int) -> None:
    for i, path in enumerate(paths):
        pipeline(dict(img_path=path, sample_idx=i, gt_label=i % classes))
