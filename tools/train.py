"""Train a config from configs/ (mmpretrain) or configs_seg/ (mmseg).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options K=V ...]
"""
from mim_plugins.apis import run_cli
from mim_plugins.apis.train import main

if __name__ == '__main__':
    run_cli(main)
