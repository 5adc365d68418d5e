"""Streaming webdataset shards: packing, the epoch plan (every sample once across ranks and
workers), the mmpretrain pipeline from bytes, bad shards, and training through tools/train.py."""
import glob
import json
import os.path as osp
import re
import socket
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from torch.utils.data import DataLoader

from conftest import ROOT, make_part_maps, run_env
from mim_plugins.datasets.shards import (ShardDataset, ShardEpochHook, expand_shards, locate,
                                         rank_batches, read_shard, stream_range, write_shards)
from mim_plugins.datasets.skip_corrupt import SKIPPED_KEY, SkipCorruptImages
from mim_plugins.utils.errors import UserInputError

SHARDS_CFG = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k-shards.py'
PACK = osp.join(ROOT, 'tools/dataset_converters/pack_shards.py')
GRID, NUM_PARTS = 7, 7


def tool(*args, ok=True):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=run_env(), capture_output=True,
                         text=True, timeout=600)
    assert (out.returncode == 0) == ok, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def png(value: int, size: int = 8) -> bytes:
    return cv2.imencode('.png', np.full((size, size), value, np.uint8))[1].tobytes()


def synthetic_shards(out_dir, sizes, **members) -> dict:
    """Shards of ``sizes`` samples with keys 000000.. and a PNG each (plus ``members``:
    ``{key: {ext: bytes}}`` overrides); written by ``write_shards`` one shard at a time."""
    key = 0
    shards = []
    for i, size in enumerate(sizes):
        samples = []
        for _ in range(size):
            name = f'{key:06d}'
            samples.append((name, members.get(name, {'png': png(key % 256)})))
            key += 1
        part = write_shards(samples, str(out_dir / f's{i}'), name=f'part{i}',
                            samples_per_shard=size)
        shards.append(part['shards'][0])  # the index names shards by file name
    index = dict(format='mim_plugins.shards/1', shards=shards, samples=sum(sizes))
    (out_dir / 'index.json').write_text(json.dumps(index))
    return index


def dataset(root, n, batch_size, **kwargs) -> ShardDataset:
    shards = [f's{i}/part{i}-000000.tar' for i in range(n)]
    return ShardDataset(shards=shards, data_root=str(root), index='index.json',
                        batch_size=batch_size, seed=0, **kwargs)


def keys_of(batch):
    return [sample['sample_key'] for sample in batch]


@pytest.fixture(scope='module')
def packed(tiny_data, tmp_path_factory):
    """The 20 tiny train images with labels and 7x7 part maps, packed by the tool into 7
    shards of <= 3 samples."""
    work = tmp_path_factory.mktemp('packed')
    parts = make_part_maps(osp.join(tiny_data, 'train'), str(work / 'parts'), GRID, NUM_PARTS)
    out = tool(PACK, tiny_data, str(work / 'shards'), '--part-root', parts,
               '--samples-per-shard', '3')
    assert "shards='train-{000000..000006}.tar'" in out.stdout
    return dict(root=str(work / 'shards'), parts=parts, data=tiny_data)


def packed_dataset(packed, batch_size, **kwargs) -> ShardDataset:
    return ShardDataset(shards='train-{000000..000006}.tar', data_root=packed['root'],
                        index='train-index.json', batch_size=batch_size, seed=0, **kwargs)


def test_expand_shards():
    assert expand_shards('a-{08..11}.tar') == ['a-08.tar', 'a-09.tar', 'a-10.tar', 'a-11.tar']
    assert expand_shards('{0..1}/x{1..2}') == ['0/x1', '0/x2', '1/x1', '1/x2']
    assert expand_shards('pipe:cat a.tar') == ['pipe:cat a.tar']
    with pytest.raises(UserInputError, match='counts down'):
        expand_shards('a-{3..1}.tar')


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_pack_keeps_every_image_label_and_part_map(packed):
    index = json.load(open(osp.join(packed['root'], 'train-index.json')))
    assert [s['samples'] for s in index['shards']] == [3] * 6 + [2]
    assert index['classes'] == [str(d) for d in range(10)]
    sources = sorted(glob.glob(osp.join(packed['data'], 'train', '*', '*.png')))
    seen = {}
    for entry in index['shards']:
        with tarfile.open(osp.join(packed['root'], entry['file'])) as tar:
            names = tar.getnames()
            assert len(names) == 3 * entry['samples']  # image, label, part map, grouped by key
            for name in names:
                seen[name] = tar.extractfile(name).read()
    keys = [name.split('.')[0] for name in seen if name.endswith('.cls')]
    assert sorted(keys) == [f'{i:06d}' for i in range(20)] and keys != sorted(keys)  # shuffled
    for i, path in enumerate(sources):  # CustomDataset order is the sorted paths
        key = f'{i:06d}'
        with open(path, 'rb') as f:
            assert seen[f'{key}.png'] == f.read()
        assert seen[f'{key}.cls'] == osp.basename(osp.dirname(path)).encode()
        part = osp.join(packed['parts'], osp.relpath(path, osp.join(packed['data'], 'train')))
        with open(part, 'rb') as f:
            assert seen[f'{key}.part.png'] == f.read()


@pytest.mark.parametrize('total,world,workers,batch', [
    (20, 1, 1, 4), (20, 2, 2, 4), (41, 2, 3, 2), (100, 4, 2, 8), (7, 1, 4, 1), (37, 3, 1, 5)])
def test_plan_gives_each_used_position_to_one_stream(total, world, workers, batch):
    rng = np.random.default_rng(total)
    cuts = np.sort(rng.integers(0, total + 1, size=5))  # 6 shards of random sizes (maybe 0)
    counts = [int(c) for c in np.diff(np.concatenate([[0], cuts, [total]]))]
    num_batches = rank_batches(total, world, batch)
    owners = np.zeros(total, int)
    for rank in range(world):
        per_rank = 0
        for worker in range(workers):
            start, stop = stream_range(num_batches, batch, rank, worker, workers)
            assert (stop - start) % batch == 0  # whole batches per worker
            per_rank += stop - start
            for shard, begin, end in locate(counts, start, stop):
                offset = sum(counts[:shard])
                assert 0 <= begin < end <= counts[shard]
                owners[offset + begin:offset + end] += 1
        assert per_rank == num_batches * batch  # every rank runs the same iterations
    used = world * num_batches * batch
    assert total - used < world * batch  # only a tail shorter than one global batch is left
    assert (owners[:used] == 1).all() and (owners[used:] == 0).all()


def test_epoch_with_workers_is_the_pipeline_on_every_sample_once(packed):
    init_default_scope('mmpretrain')
    ds = packed_dataset(packed, 4, pipeline=[dict(type='LoadImageFromShard'),
                                             dict(type='PackInputs')])
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=default_collate)
    assert len(ds) == 20 and len(loader) == 5

    def epoch(e):
        ds.set_epoch(e)
        batches = list(loader)
        assert all(b['inputs'].shape == (4, 3, 28, 28) for b in batches)
        return [s.img_path for b in batches for s in b['data_samples']]

    first, second, again = epoch(0), epoch(1), epoch(0)
    assert len(first) == 20 and sorted(first) == sorted(second) and len(set(first)) == 20
    assert first != second  # another epoch, another order
    assert first == again  # an epoch's stream is reproducible: what exact resume relies on
    assert all(':' in p and p.split(':')[0].endswith('.tar') for p in first)


def test_not_divisible_drops_the_tail_of_the_epochs_last_shard(tmp_path):
    synthetic_shards(tmp_path, [5, 5, 5, 5])
    ds = dataset(tmp_path, 4, batch_size=6)
    assert len(ds) == 18  # 20 // 6 = 3 batches
    for epoch in range(3):
        ds.set_epoch(epoch)
        keys = [s['sample_key'] for s in ds]
        assert len(keys) == len(set(keys)) == 18
        last = int(ds.shard_order(epoch)[-1])
        assert {f'{i:06d}' for i in range(20)} - set(keys) == {
            f'{5 * last + i:06d}' for i in (3, 4)}


def test_pipe_shards_read_like_local_ones(packed):
    local = packed_dataset(packed, 4, shuffle=False)
    shards = 'pipe:cat ' + osp.join(packed['root'], 'train-{000000..000006}.tar')
    piped = ShardDataset(shards=shards, index=osp.join(packed['root'], 'train-index.json'),
                         batch_size=4, shuffle=False)
    assert [s['sample_key'] for s in piped] == [s['sample_key'] for s in local]
    assert [s['img_bytes'] for s in piped] == [s['img_bytes'] for s in local]
    with pytest.raises(UserInputError, match='index='):
        ShardDataset(shards='pipe:cat ' + osp.join(packed['root'], 'train-000000.tar'),
                     batch_size=1)


def _rank_keys(rank: int, world: int, port: int, root: str, out: str) -> None:
    """One DDP rank: two epochs through 2 persistent dataloader workers; writes the keys."""
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                         rank=rank, world_size=world)
    ds = dataset(root, 8, batch_size=4)
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True,
                        collate_fn=keys_of)
    epochs = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        epochs.append([key for batch in loader for key in batch])
    with open(osp.join(out, f'rank{rank}.json'), 'w') as f:
        json.dump(dict(len=len(loader), epochs=epochs), f)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_two_workers_see_every_sample_once_per_epoch(tmp_path):
    synthetic_shards(tmp_path, [5] * 8)  # 40 samples; batch 4 x 2 ranks: 5 iterations each
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_rank_keys, args=(2, port, str(tmp_path), str(tmp_path)),
                                nprocs=2)
    ranks = [json.load(open(tmp_path / f'rank{r}.json')) for r in range(2)]
    assert [r['len'] for r in ranks] == [5, 5]
    for epoch in range(2):
        seen = [key for r in ranks for key in r['epochs'][epoch]]
        assert len(ranks[0]['epochs'][epoch]) == len(ranks[1]['epochs'][epoch]) == 20
        assert sorted(seen) == [f'{i:06d}' for i in range(40)]  # each exactly once
    assert ranks[0]['epochs'][0] != ranks[0]['epochs'][1]  # persistent workers saw epoch 1


def test_part_maps_travel_with_their_images(packed):
    init_default_scope('mmpretrain')
    ds = packed_dataset(packed, 4, with_label=True, pipeline=[
        dict(type='LoadImageFromShard'),
        dict(type='LoadPartMapFromShard', grid=GRID, num_parts=NUM_PARTS),
        dict(type='PackInputs', algorithm_keys=['part_ids'])])
    sources = sorted(glob.glob(osp.join(packed['data'], 'train', '*', '*.png')))
    count = 0
    for data in ds:
        sample = data['data_samples']
        key = sample.img_path.rsplit(':', 1)[1].split('.')[0]  # the source index
        path = sources[int(key)]
        expected = cv2.imread(osp.join(packed['parts'], osp.relpath(
            path, osp.join(packed['data'], 'train'))), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(np.asarray(sample.part_ids), expected)
        assert int(sample.gt_label) == int(osp.basename(osp.dirname(path)))
        assert np.array_equal(data['inputs'].permute(1, 2, 0).numpy(), cv2.imread(path))
        count += 1
    assert count == 20


def _bad_shards(tmp_path):
    good = png(7)
    bad = {'000003': {'png': good[:len(good) // 2]}, '000006': {'png': b'not an image'}}
    synthetic_shards(tmp_path, [5, 5], **bad)
    return [osp.join(str(tmp_path), 's0/part0-000000.tar') + ':000003.png',
            osp.join(str(tmp_path), 's1/part1-000000.tar') + ':000006.png']


def test_unreadable_image_names_shard_and_member(tmp_path):
    init_default_scope('mmpretrain')
    bad = _bad_shards(tmp_path)
    ds = dataset(tmp_path, 2, batch_size=2, shuffle=False,
                 pipeline=[dict(type='LoadImageFromShard'), dict(type='PackInputs')])
    with pytest.raises(UserInputError) as info:
        list(ds)
    message = str(info.value)
    shard, member = bad[0].rsplit(':', 1)
    assert f"'{shard}' member '{member}'" in message and '--skip-corrupt-images' in message
    assert '\n' not in message


def test_skip_corrupt_keeps_the_epoch_and_reports_each_image(tmp_path):
    init_default_scope('mmpretrain')
    bad = _bad_shards(tmp_path)
    ds = dataset(tmp_path, 2, batch_size=2, shuffle=False, skip_corrupt=True,
                 pipeline=[dict(type='LoadImageFromShard'), dict(type='PackInputs')])
    out = list(ds)
    assert len(out) == len(ds) == 10  # the epoch keeps its length
    reported = [p for d in out for p in d['data_samples'].metainfo.get(SKIPPED_KEY, [])]
    assert reported == bad
    paths = [d['data_samples'].img_path for d in out]
    assert not set(paths) & set(bad)
    # each is replaced by the stream's next readable image, which is then seen twice
    for path, nxt in zip(bad, ('000004.png', '000007.png')):
        assert paths.count(path.rsplit(':', 1)[0] + ':' + nxt) == 2


def test_missing_part_map_names_shard_and_member_even_when_skipping(tmp_path):
    init_default_scope('mmpretrain')
    synthetic_shards(tmp_path, [3])
    ds = dataset(tmp_path, 1, batch_size=1, skip_corrupt=True, shuffle=False, pipeline=[
        dict(type='LoadImageFromShard'), dict(type='LoadPartMapFromShard', grid=8)])
    with pytest.raises(UserInputError, match=r"has no part map '000000\.part\.png' for image "
                                             r"'000000\.png'\. Fix: pack the shards with .*"
                                             '--part-root'):
        list(ds)


def test_broken_shards_and_stale_index(tmp_path):
    synthetic_shards(tmp_path, [4, 4])
    path = tmp_path / 's1/part1-000000.tar'
    data = path.read_bytes()
    path.write_bytes(data[:1500])  # cut inside the data of the second member
    with pytest.raises(UserInputError, match=r"The shard '.*part1-000000\.tar' (is truncated|"
                                             'ended after)'):
        list(dataset(tmp_path, 2, batch_size=1, shuffle=False))
    (tmp_path / 's1/part1-000000.tar').write_bytes(b'x' * 2048)
    with pytest.raises(UserInputError, match='truncated or not a tar file'):
        list(read_shard(str(path)))
    with pytest.raises(UserInputError, match='does not exist'):
        list(read_shard(str(tmp_path / 'nope.tar')))
    with pytest.raises(UserInputError, match="not in the index"):
        ShardDataset(shards=['other.tar'], data_root=str(tmp_path), index='index.json',
                     batch_size=1)
    with pytest.raises(UserInputError, match='less than one batch'):
        dataset(tmp_path, 2, batch_size=9)


def test_epoch_hook_sets_the_epoch_and_checks_the_batch_size(tmp_path):
    from types import SimpleNamespace
    synthetic_shards(tmp_path, [4])
    ds = dataset(tmp_path, 1, batch_size=2)
    runner = SimpleNamespace(train_loop=SimpleNamespace(
        epoch=3, dataloader=DataLoader(ds, batch_size=2)))
    ShardEpochHook().before_train(runner)
    ShardEpochHook().before_train_epoch(runner)
    assert int(ds._epoch) == 3
    runner.train_loop.dataloader = DataLoader(ds, batch_size=4)
    with pytest.raises(UserInputError, match='train_dataloader.dataset.batch_size=N'):
        ShardEpochHook().before_train(runner)
    runner.train_loop.dataloader = DataLoader(SkipCorruptImages(ds), batch_size=2)
    with pytest.raises(UserInputError, match='dataset.skip_corrupt=True'):  # not by index
        ShardEpochHook().before_train(runner)
    with pytest.raises(UserInputError, match='cannot be indexed'):
        ds[0]


def shard_options(packed, batch=8):
    # 20 samples, batch 8: 2 iterations per epoch (4 samples left out), 2 persistent workers
    return ['--cfg-options', f"train_dataloader.dataset.data_root={packed['root']}",
            'train_dataloader.dataset.shards=train-{000000..000006}.tar',
            f'train_dataloader.batch_size={batch}', f'train_dataloader.dataset.batch_size={batch}',
            'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1']


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_mae_trains_two_iterations_from_shards(packed, tmp_path):
    out = tool('tools/train.py', SHARDS_CFG, '--work-dir', str(tmp_path), *shard_options(packed))
    log = out.stdout + out.stderr
    assert 'Epoch(train) [1][2/2]' in log and 'loss:' in log
    assert osp.isfile(tmp_path / 'epoch_1.pth')


@pytest.mark.slow
def test_dist_train_two_ranks_from_shards(packed, tmp_path):
    # 2 ranks x 2 workers, batch 4 per rank: 20 // 8 = 2 iterations per epoch on each rank
    opts = shard_options(packed, batch=4)
    opts[opts.index('train_cfg.max_epochs=1')] = 'train_cfg.max_epochs=2'
    out = subprocess.run(['bash', 'tools/dist_train.sh', SHARDS_CFG, '2', '--work-dir',
                          str(tmp_path), *opts], cwd=ROOT, env=run_env(), capture_output=True,
                         text=True, timeout=600)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert 'GPU number: 2' in log and 'Epoch(train) [2][2/2]' in log


@pytest.mark.slow
def test_mid_epoch_resume_trains_what_the_uninterrupted_run_trained(packed, tmp_path):
    # batch 4: 5 iterations per epoch; a checkpoint after each; in-process loading, so that
    # the crops (drawn in the main process) are restored with the random state too
    opts = shard_options(packed, batch=4) + [
        'train_cfg.max_epochs=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'default_hooks.checkpoint.by_epoch=False',
        'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=-1']
    whole = tool('tools/train.py', SHARDS_CFG, '--work-dir', str(tmp_path / 'whole'), *opts)
    resumed = tool('tools/train.py', SHARDS_CFG, '--work-dir', str(tmp_path / 'resumed'),
                   '--resume', str(tmp_path / 'whole' / 'iter_7.pth'), *opts)

    def losses(out):
        return re.findall(r'Epoch\(train\) (\[2\]\[\d/5\]).*loss: ([\d.]+)',
                          out.stdout + out.stderr)

    assert 'epoch 2 continues at batch 3/5' in resumed.stdout + resumed.stderr
    assert losses(resumed) == losses(whole)[2:] and len(losses(resumed)) == 3


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_train_stops_with_one_line_naming_the_bad_member(tmp_path):
    bad = _bad_shards(tmp_path)
    opts = ['--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}',
            'train_dataloader.dataset.shards=[s0/part0-000000.tar,s1/part1-000000.tar]',
            'train_dataloader.dataset.index=index.json', 'train_dataloader.batch_size=2',
            'train_dataloader.dataset.batch_size=2', 'train_cfg.max_epochs=1']
    out = tool('tools/train.py', SHARDS_CFG, '--work-dir', str(tmp_path / 'w'), *opts, ok=False)
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith('ERROR:')]
    assert out.returncode == 2 and len(errors) == 1, out.stderr[-3000:]
    assert any(f"member '{b.rsplit(':', 1)[1]}'" in errors[0] for b in bad)
    assert 'part0-000000.tar' in errors[0] or 'part1-000000.tar' in errors[0]


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_skip_corrupt_images_flag_trains_on_and_lists_the_bad_members(tmp_path):
    bad = _bad_shards(tmp_path)
    opts = ['--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}',
            'train_dataloader.dataset.shards=[s0/part0-000000.tar,s1/part1-000000.tar]',
            'train_dataloader.dataset.index=index.json', 'train_dataloader.batch_size=2',
            'train_dataloader.dataset.batch_size=2', 'train_cfg.max_epochs=1']
    work = tmp_path / 'w'
    out = tool('tools/train.py', SHARDS_CFG, '--work-dir', str(work), '--skip-corrupt-images',
               *opts)
    assert 'Epoch 1: skipped 2 unreadable images' in out.stdout + out.stderr
    listed = (work / 'skipped_images.txt').read_text().splitlines()
    assert sorted(line.split('\t')[1] for line in listed) == sorted(bad)
