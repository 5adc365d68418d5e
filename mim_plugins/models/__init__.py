"""One file per idea; importing this package registers the models into mmpretrain."""
from . import (bottleneck, bottleneck_mae, heads, mask_generators, masked_beit,  # noqa: F401
               mae_pytorch, mae_pytorch_vit, masked_mae, masked_maskfeat, semmae, supmae)
from . import backbones  # noqa: F401  (downstream backbones)
