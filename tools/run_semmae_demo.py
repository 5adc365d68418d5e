"""The second demo: SemMAE end to end on the embedded MNIST-5k (stage 1 part learning from the
main job's MAE, stage 2 pretraining, fine-tune and linear probe), next to plain MAE.

    python tools/run_semmae_demo.py [--work-dir work_dirs/demo]
"""
from mim_plugins.apis import run_cli
from mim_plugins.apis.demo_semmae import main

if __name__ == '__main__':
    run_cli(main)
