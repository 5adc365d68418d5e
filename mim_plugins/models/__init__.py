"""One file per idea; importing this package registers the models into mmpretrain."""
from . import bottleneck, bottleneck_mae, heads, mask_generators, semmae, supmae  # noqa: F401
from . import backbones  # noqa: F401  (downstream backbones)
