"""One file per idea; importing this package registers the models into mmpretrain."""
from . import (bottleneck, bottleneck_beit, bottleneck_mae, bottleneck_maskfeat,  # noqa: F401
               dalle_tokenizer, heads, mae_pytorch, mae_pytorch_vit, mask_generators,
               masked_beit, masked_mae, masked_maskfeat, semmae, supmae)
from . import backbones  # noqa: F401  (downstream backbones)
