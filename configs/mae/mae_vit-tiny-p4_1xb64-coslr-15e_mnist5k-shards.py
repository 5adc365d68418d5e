# The MNIST-5k MAE demo (same model, schedule and augmentation) trained from webdataset tar
# shards instead of the image folder: the layout of a cluster run, where each rank and worker
# streams its own shards. Pack them once (8 shards of 500 images):
#   python tools/dataset_converters/pack_shards.py data/mnist5k data/mnist5k/shards \
#       --samples-per-shard 500
# Shards on remote storage: shards='pipe:curl -s https://host/shards/train-{000000..000007}.tar'
# (any command writing the tar to stdout) with the same index file.
_base_ = ['./mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py']
custom_imports = dict(imports=['mim_plugins'], allow_failed_imports=False)

batch_size = 64  # of one rank; the data set plans epochs of whole batches, so it gets it too
train_pipeline = [
    dict(type='LoadImageFromShard'),
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.5, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    sampler=None,  # streamed: the data set splits the shards between ranks and workers
    dataset=dict(
        _delete_=True,
        type='ShardDataset',
        data_root='data/mnist5k/shards/',
        shards='train-{000000..000007}.tar',
        index='train-index.json',
        batch_size=batch_size,
        shuffle_buffer=1000,
        pipeline=train_pipeline))
custom_hooks = _base_.custom_hooks + [dict(type='ShardEpochHook')]  # per-epoch shard order (no sampler to tell)
