from ..utils.stack import seg_missing
from . import part_maps  # noqa: F401  (registers the part-map transforms)
from . import crop_decode  # noqa: F401  (registers the crop-aware decoding transforms)
from . import shards  # noqa: F401  (registers ShardDataset, its transforms and ShardEpochHook)
from .resumable_sampler import ResumableSampler
from .skip_corrupt import SkipCorruptImages
from .embedded import prepare_mnist5k, write_custom_dataset
from .part_maps import part_map_path, save_part_map
from .photos import groceries_parquet_path, prepare_groceries, write_photo_dataset

if seg_missing() is None:  # an mmseg that imports (either install profile)
    from . import seg_transforms  # noqa: F401  (registers the label-map transforms in mmseg)

__all__ = ['ResumableSampler', 'SkipCorruptImages', 'groceries_parquet_path', 'part_map_path',
           'prepare_groceries', 'prepare_mnist5k', 'save_part_map', 'write_custom_dataset',
           'write_photo_dataset']
