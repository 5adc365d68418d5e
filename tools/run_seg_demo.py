"""The segmentation demo: UperNet (trained end to end) and a linear probe (frozen encoder) on
the MNIST-5k digits as 28x28 segmentation images in ADE20K's layout, each from the main job's
MAE and from a random init, mIoU side by side (~5 min on 2 CPU cores once the main job's MAE
exists; it is pretrained first otherwise).

    python tools/run_seg_demo.py [--work-dir work_dirs/demo] [--checkpoint MAE.pth]
"""
from mim_plugins.apis import run_cli
from mim_plugins.apis.seg_demo import main

if __name__ == '__main__':
    run_cli(main)
