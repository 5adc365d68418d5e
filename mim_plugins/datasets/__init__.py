from .embedded import prepare_mnist5k, write_custom_dataset

__all__ = ['prepare_mnist5k', 'write_custom_dataset']
