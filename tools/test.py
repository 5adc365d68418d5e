"""Evaluate a checkpoint with a config from configs/ (mmpretrain) or configs_seg/ (mmseg).

    python tools/test.py CONFIG CHECKPOINT [--out metrics.json] [--tta] [--cfg-options K=V ...]
"""
from mim_plugins.apis import run_cli
from mim_plugins.apis.test import main

if __name__ == '__main__':
    run_cli(main)
