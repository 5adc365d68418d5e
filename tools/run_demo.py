"""The main job: MAE pretraining of a small ViT on the embedded MNIST-5k, then fine-tune, linear
probe and k-NN accuracies of MAE vs. random init vs. raw pixels, and a reconstruction figure
(~10 min on CPU).

    python tools/run_demo.py [--work-dir work_dirs/demo]
"""
from mim_plugins.apis import run_cli
from mim_plugins.apis.demo import main

if __name__ == '__main__':
    run_cli(main)
