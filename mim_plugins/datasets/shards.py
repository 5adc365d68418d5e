"""Streaming webdataset shards: a data set packed into tar files, read as streams on a cluster.

Format: webdataset's, plain tar files whose members ``<key>.<ext>`` are grouped by key (keys
hold no dot; the extension is everything after the first one)::

    {out}/{name}-000000.tar    000042.png 000042.cls 000042.part.png 000007.png 000007.cls ...
    {out}/{name}-index.json    {"shards": [{"file": "train-000000.tar", "samples": 500}, ...],
                                "samples": 4000, "classes": [...]}

``<key>.png|jpg|...`` holds the image file's bytes as they were, ``<key>.cls`` the class index
as text, ``<key>.part.png`` the SemMAE part map (the 8-bit PNG of ``part_maps.py``). Keys are
the samples' indices in the source data set; :func:`write_shards`
(``tools/dataset_converters/pack_shards.py``) shuffles the samples across shards.

Epoch plan, a pure function of the shard sizes, ``seed``, the epoch, the world size ``W``, the
dataloader workers ``K`` and the batch size ``B`` of one rank:

1. the shards are permuted by ``(seed, epoch)`` (the same permutation on every rank) and read
   as one sequence of ``N`` samples;
2. each rank gets ``M = N // (W * B)`` batches: rank ``r`` takes positions
   ``[r*M*B, (r+1)*M*B)``. The last ``N - W*M*B < W*B`` positions (the tail of that epoch's
   last shard) are left out of the epoch, like ``drop_last``; with ``W*B`` dividing ``N`` every
   sample is seen exactly once per epoch;
3. the rank's ``M`` batches are cut into ``K`` contiguous runs of whole batches (sizes
   ``M // K`` or ``M // K + 1``), one per dataloader worker, which reads the shards its run
   covers and shuffles them through a buffer seeded by ``(seed, epoch, rank, worker)``.

So ``len(dataset) = M * B`` on every rank, every rank runs the same ``M`` iterations (DDP never
waits for a rank whose epoch ended early), every worker yields whole batches, and the ranks and
workers read disjoint samples. A shard that straddles two runs is read by both, each taking its
own members (skipped members are not decoded; a local file is seeked over, a ``pipe:`` stream
read through). With equal shards of a multiple of ``B`` samples and ``W*K`` dividing the number
of shards, every stream reads whole shards only.

Epochs: ``ShardEpochHook`` (in the config's ``custom_hooks``) calls :meth:`ShardDataset.set_epoch`
before each epoch; the value lives in shared memory, so persistent workers see it too. This is
for epoch-based loops: an ``IterBasedTrainLoop`` starts no epochs and would replay epoch 0's
order on every pass (persistent workers and ``num_workers=0`` warn when an epoch repeats).

Resume: epoch ``e``'s stream on each rank is fixed by the plan above, so a resumed run reading the
same shards with the same ``W``, ``K``, ``B`` and seed replays it. ``tools/train.py``
(``ResumableEpochBasedTrainLoop``) resumes a mid-epoch checkpoint at batch ``d`` of epoch ``e``:
it reads and drops the first ``d`` batches of the epoch's stream (a stream cannot skip without
reading; they are decoded but never reach the model), so nothing repeats and nothing is skipped;
with ``num_workers=0`` even the crops match the uninterrupted run, with workers they restart from
the worker seeds. What may repeat: with another ``W``, ``K`` or ``B`` the resumed epoch follows
the new plan minus ``d`` batches, so some of its samples are trained twice and others not at all
(later epochs are whole again); mmengine's stock ``EpochBasedTrainLoop`` restarts the epoch from
its first batch and trains its first ``d`` batches twice; with ``skip_corrupt`` an image that
replaced an unreadable one is seen twice (as with ``SkipCorruptImages``).
"""
import copy
import gzip
import io
import json
import logging
import os
import os.path as osp
import re
import signal
import struct
import subprocess
import tarfile
import zlib
from typing import (BinaryIO, Callable, Dict, Generator, Iterable, Iterator, List, Optional,
                    Sequence, Tuple, Union)

import numpy as np
import torch
from mmengine import fileio
from mmengine.dataset import Compose
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmpretrain.registry import DATASETS, TRANSFORMS
from torch.utils.data import IterableDataset, get_worker_info

from ..utils.errors import UserInputError
from .shard_transforms import UnreadableShardImage
from .skip_corrupt import is_unreadable_image, tag_skipped

#: ``format`` of the index files written by :func:`write_shards`
INDEX_FORMAT = 'mim_plugins.shards/1'
#: member extensions read as the sample's image (lower case)
IMAGE_EXTS = ('png', 'jpg', 'jpeg', 'bmp', 'webp', 'tif', 'tiff', 'ppm', 'pgm')
PART_EXT = 'part.png'
LABEL_EXT = 'cls'
_REPACK = 'tools/dataset_converters/pack_shards.py'
_BRACES = re.compile(r'\{(\d+)\.\.(\d+)\}')

Sample = Tuple[str, Dict[str, bytes]]  # (key, {extension: bytes})
_NO_INDEX = ('ShardDataset streams its samples and cannot be indexed, so a wrapper that reads '
             'by index (SkipCorruptImages, which tools/train.py --skip-corrupt-images puts '
             'around map-style training sets) cannot hold it. Fix: set '
             "train_dataloader.dataset.skip_corrupt=True and add dict(type='SkippedImagesHook') "
             'to custom_hooks instead.')


def expand_shards(pattern: str) -> List[str]:
    """``'a-{000..002}.tar'`` -> ``['a-000.tar', 'a-001.tar', 'a-002.tar']``: each ``{i..j}``
    range counts from ``i`` to ``j`` with the width of ``i``; several ranges multiply."""
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.groups()
    if int(last) < int(first):
        raise UserInputError(f"The shard range '{match.group()}' in '{pattern}' counts down. "
                             'Fix: write it as {first..last}, e.g. {000000..000007}.')
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [shard for i in range(int(first), int(last) + 1)
            for shard in expand_shards(f'{head}{i:0{len(first)}d}{tail}')]


def split_member(name: str) -> Tuple[str, str]:
    """``'dir/000042.part.png'`` -> ``('dir/000042', 'part.png')``: webdataset's key and
    extension, split at the first dot of the file name."""
    folder, _, base = name.rpartition('/')
    key, _, ext = base.partition('.')
    return (f'{folder}/{key}' if folder else key), ext


def write_shards(samples: Iterable[Sample], out_dir: str, name: str = 'train',
                 samples_per_shard: int = 1000, classes: Optional[Sequence[str]] = None) -> dict:
    """Write ``(key, {ext: bytes})`` samples, in the given order, into
    ``{out_dir}/{name}-000000.tar, ...`` of ``samples_per_shard`` samples (the last may hold
    fewer) and the index ``{out_dir}/{name}-index.json``; returns the index.

    Each shard is written to a temporary name and renamed when complete, the index last, so an
    interrupted run leaves no half shard under a shard's name. Shards ``{name}-NNNNNN.tar`` of
    an earlier, longer run are deleted (the index would not list them)."""
    if samples_per_shard < 1:
        raise ValueError(f'samples_per_shard must be at least 1, got {samples_per_shard}')
    os.makedirs(out_dir, exist_ok=True)
    shards: List[dict] = []
    tar, count = None, 0
    seen = set()
    for key, members in samples:
        if '.' in key.rpartition('/')[2] or not key or key in seen:
            raise ValueError(f'sample keys must be unique and hold no dot, got {key!r}')
        seen.add(key)
        if tar is None:
            path = osp.join(out_dir, f'{name}-{len(shards):06d}.tar')
            tar, count = tarfile.open(path + '.tmp', 'w'), 0
        for ext, data in members.items():
            info = tarfile.TarInfo(f'{key}.{ext}')
            info.size, info.mode = len(data), 0o644  # mtime 0: the same input packs identically
            tar.addfile(info, io.BytesIO(data))
        count += 1
        if count == samples_per_shard:
            shards.append(_close_shard(tar, count))
            tar = None
    if tar is not None:
        shards.append(_close_shard(tar, count))
    if not shards:
        raise UserInputError(f"No samples to pack into '{out_dir}'. Fix: check the data root "
                             'and prefix (the image folder must hold images).')
    keep = {s['file'] for s in shards}
    for stale in os.listdir(out_dir):
        if re.fullmatch(re.escape(name) + r'-\d{6}\.tar', stale) and stale not in keep:
            os.remove(osp.join(out_dir, stale))
    index = dict(format=INDEX_FORMAT, shards=shards, samples=sum(s['samples'] for s in shards))
    if classes is not None:
        index['classes'] = list(classes)
    path = osp.join(out_dir, f'{name}-index.json')
    with open(path + '.tmp', 'w') as f:
        json.dump(index, f, indent=1)
    os.replace(path + '.tmp', path)
    return index


def _close_shard(tar: tarfile.TarFile, count: int) -> dict:
    tmp = tar.name
    tar.close()
    os.replace(tmp, tmp[:-len('.tmp')])
    return dict(file=osp.basename(tmp[:-len('.tmp')]), samples=count)


class TarFormatError(ValueError):
    """A tar stream that is truncated, damaged, or no tar at all."""


def tar_members(stream: BinaryIO, seekable: bool) -> Iterator[Tuple[str, int, Callable[[], bytes]]]:
    """``(name, size, read)`` for each regular file of the tar ``stream``, in order. ``read()``
    returns the member's bytes; call it before asking for the next member, or never (the data
    is then seeked over, or read through when not ``seekable``). Reads ustar headers with GNU
    long names and PAX ``path``/``size`` records (what ``tarfile`` writes), ends at the zero
    blocks or at the end of the stream, and raises ``TarFormatError`` for a bad header checksum
    or truncated data.

    Written for speed: ``tarfile`` parses every header field in Python, which costs a shard of
    small images more than decoding them."""
    pax: Dict[bytes, bytes] = {}
    long_name: Optional[bytes] = None
    first = True
    while True:
        header = stream.read(_BLOCK)
        if not header or header == _ZERO_BLOCK:
            if first:
                raise TarFormatError('empty file')
            return
        if len(header) < _BLOCK:
            raise TarFormatError('truncated header')
        if not _checksum_ok(header):
            raise TarFormatError('not a tar file' if first else 'bad header checksum')
        first = False
        kind, size = header[156:157], _tar_size(header[124:136])
        if b'size' in pax:
            size = int(pax[b'size'])
        padded = -(-size // _BLOCK) * _BLOCK
        if kind in (b'x', b'g', b'L'):  # a PAX record or GNU long name for the next member
            data = _read_exact(stream, padded)[:size]
            if kind == b'x':
                pax = _pax_records(data)
            elif kind == b'L':
                long_name = data.rstrip(b'\0')
            continue
        if kind not in (b'0', b'\0', b'7'):  # directories, links, devices
            _skip(stream, padded, seekable)
            pax, long_name = {}, None
            continue
        name = pax.get(b'path') or long_name or header[:100].split(b'\0', 1)[0]
        if not (pax.get(b'path') or long_name) and header[257:262] == b'ustar':
            prefix = header[345:500].split(b'\0', 1)[0]
            name = prefix + b'/' + name if prefix else name
        pax, long_name = {}, None
        done = [False]

        def read(size: int = size, padded: int = padded, done: list = done) -> bytes:
            done[0] = True
            return _read_exact(stream, padded)[:size]

        yield name.decode('utf-8', 'surrogateescape'), size, read
        if not done[0]:
            _skip(stream, padded, seekable)


_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_TAR_ERRORS = (TarFormatError, EOFError, zlib.error, OSError)


def _checksum_ok(header: bytes) -> bool:
    """The header's checksum: its bytes summed with the checksum field as spaces (unsigned, or
    signed as some old writers did)."""
    try:
        stored = int(header[148:156].strip(b' \0'), 8)
    except ValueError:
        return False
    if stored == sum(header[:148]) + 256 + sum(header[156:]):
        return True
    return stored == sum(struct.unpack('148b8x356b', header)) + 256


def _tar_size(field: bytes) -> int:
    if field[0] & 0x80:  # GNU base-256, for members over 8 GiB
        return int.from_bytes(field[1:], 'big')
    return int(field.strip(b' \0') or b'0', 8)


def _pax_records(data: bytes) -> Dict[bytes, bytes]:
    """``b'27 path=dir/000001.png\\n'`` records -> ``{b'path': b'dir/000001.png'}``."""
    records, pos = {}, 0
    while pos < len(data):
        length = int(data[pos:data.index(b' ', pos)])
        key, _, value = data[data.index(b' ', pos) + 1:pos + length - 1].partition(b'=')
        records[key] = value
        pos += length
    return records


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise TarFormatError(f'truncated data ({len(data)} of {size} bytes)')
        data += more
    return data


def _skip(stream: BinaryIO, size: int, seekable: bool) -> None:
    if seekable:
        stream.seek(size, os.SEEK_CUR)  # past the end: the next header read reports it
        return
    while size > 0:
        chunk = stream.read(min(size, 1 << 20))
        if not chunk:
            raise TarFormatError('truncated data')
        size -= len(chunk)


def read_shard(url: str, start: int = 0,
               stop: Optional[int] = None) -> Iterator[Tuple[int, str, Optional[Dict[str, bytes]]]]:
    """``(position, key, members)`` for every sample of shard ``url`` (a local path, or
    ``pipe:COMMAND`` writing the tar to stdout; plain or gzipped tar) up to position ``stop``
    (exclusive), in tar order; ``members`` (``{ext: bytes}``) is ``None`` before ``start``:
    those members are passed over unread. Stops reading (and ends the command) once ``stop``
    is reached.

    A missing shard, a truncated or non-tar file, a key whose members are not adjacent, and a
    command that fails raise ``UserInputError`` naming the shard and the fix."""
    proc = None
    try:
        if url.startswith('pipe:'):
            proc = subprocess.Popen(url[len('pipe:'):], shell=True, stdout=subprocess.PIPE)
            raw, seekable = proc.stdout, False
        else:
            raw, seekable = open(url, 'rb'), True
        stream = raw
        if raw.peek(2)[:2] == b'\x1f\x8b':
            stream, seekable = gzip.GzipFile(fileobj=raw), False
    except FileNotFoundError:
        raise UserInputError(f"The shard '{url}' does not exist. Fix: pack it with {_REPACK}, "
                             'or correct the ShardDataset shards / data_root.') from None
    complete = False
    try:
        complete = yield from _samples(url, tar_members(stream, seekable), proc, start, stop)
    finally:
        try:
            if proc is not None:
                _end_command(url, proc, complete)
        finally:
            stream.close()
            raw.close()


def _samples(url: str, members_of: Iterator[Tuple[str, int, Callable[[], bytes]]], proc,
             start: int, stop: Optional[int]
             ) -> Generator[Tuple[int, str, Optional[Dict[str, bytes]]], None, bool]:
    """The generator of :func:`read_shard`; returns whether it read the tar to its end."""
    position, key, members, last = -1, None, None, None
    seen = set()
    try:
        for name, _, read in members_of:
            member_key, ext = split_member(name)
            if member_key != key:
                if key is not None:
                    yield position, key, members
                if member_key in seen:
                    raise UserInputError(
                        f"The members of sample '{member_key}' in shard '{url}' are not adjacent "
                        f"(found '{name}' after other samples). Fix: repack the shard with "
                        f'{_REPACK} (webdataset groups a sample\'s members together).')
                seen.add(member_key)
                position, key = position + 1, member_key
                if stop is not None and position >= stop:
                    return False
                members = {} if position >= start else None
            if members is not None:
                members[ext] = read()
            last = name
    except _TAR_ERRORS as exc:
        _raise_broken(url, proc, last, exc)
    if key is not None:
        yield position, key, members
    return True


def _raise_broken(url: str, proc, last: Optional[str], exc: BaseException) -> None:
    if proc is not None:
        proc.stdout.close()  # a command still writing ends on SIGPIPE
        if proc.wait() not in (0, -signal.SIGPIPE, 128 + signal.SIGPIPE):
            raise UserInputError(f"The shard command '{url}' failed (exit status "
                                 f'{proc.returncode}). Fix: run the command by hand: it must '
                                 'write the tar to stdout.')
    after = f" after member '{last}'" if last else ''
    raise UserInputError(f"The shard '{url}' is truncated or not a tar file ({type(exc).__name__}"
                         f'{after}: {exc}). Fix: copy the shard again, or repack it with '
                         f'{_REPACK}.') from None


def _end_command(url: str, proc, complete: bool) -> None:
    """Reap a ``pipe:`` command: read to the end and check its status when the shard was read
    whole, else stop it (it would block on a full pipe)."""
    if complete:
        proc.stdout.read()  # tar's trailing padding
        proc.stdout.close()
        if proc.wait() != 0:
            raise UserInputError(f"The shard command '{url}' failed (exit status "
                                 f'{proc.returncode}). Fix: run the command by hand: it must '
                                 'write the tar to stdout.')
    else:
        proc.kill()
        proc.stdout.close()
        proc.wait()


def count_samples(url: str) -> int:
    """Number of samples (keys) in a local shard, from its member headers (data is seeked over)."""
    count = 0
    for count, _ in enumerate(read_shard(url, start=1 << 62), start=1):
        pass
    return count


def rank_batches(total: int, world_size: int, batch_size: int) -> int:
    """``M``: the batches each of ``world_size`` ranks trains per epoch from ``total`` samples."""
    return total // (world_size * batch_size)


def stream_range(num_batches: int, batch_size: int, rank: int, worker: int,
                 num_workers: int) -> Tuple[int, int]:
    """Positions ``[start, stop)`` of the epoch's sequence that dataloader ``worker`` (of
    ``num_workers``) of ``rank`` reads, for ``num_batches`` (``M``) batches per rank."""
    base = rank * num_batches * batch_size
    first = worker * num_batches // num_workers
    end = (worker + 1) * num_batches // num_workers
    return base + first * batch_size, base + end * batch_size


def locate(counts: Sequence[int], start: int, stop: int) -> List[Tuple[int, int, int]]:
    """``(i, begin, end)`` for each shard ``i`` (of shards of ``counts`` samples, read one after
    the other) that positions ``[start, stop)`` of the sequence touch: its members
    ``begin..end-1``."""
    pieces, offset = [], 0
    for i, count in enumerate(counts):
        begin, end = max(start, offset), min(stop, offset + count)
        if begin < end:
            pieces.append((i, begin - offset, end - offset))
        offset += count
    return pieces


def shuffle_buffer(items: Iterable, size: int, rng: np.random.Generator) -> Iterator:
    """``items`` shuffled through a buffer of ``size``: once it is full, each new item takes the
    place of a uniformly drawn one, which is yielded; the rest come out shuffled at the end."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = int(rng.integers(size))
        buffer[i], item = item, buffer[i]
        yield item
    rng.shuffle(buffer)
    yield from buffer


@DATASETS.register_module()
class ShardDataset(IterableDataset):
    """Trains from webdataset tar shards; the epoch plan, epochs and resume are in the module
    docstring. Use it with ``sampler=None`` in the dataloader config and ``ShardEpochHook`` in
    ``custom_hooks``.

    Args:
        shards: shard paths or ``pipe:COMMAND`` s (a string or a list; ``{000000..000007}``
            ranges expand), relative local paths taken from ``data_root``.
        batch_size: ``train_dataloader.batch_size`` (the batch of one rank): the plan cuts the
            epoch into whole batches, so ``len()`` depends on it. ``ShardEpochHook`` checks it.
        pipeline: transforms from ``LoadImageFromShard`` on (the sample arrives as
            ``img_bytes``, ``part_bytes``, ``gt_label``, ``img_path='shard:member'``, ``shard``,
            ``member``, ``sample_key`` and ``sample_idx``, its position in the listed shards).
        data_root: folder of relative shard and index paths.
        index: the index written by ``pack_shards.py`` (sample count per shard, classes).
            Required for ``pipe:`` shards; without it local shards are counted from their
            headers when the data set is built.
        with_label: every sample must hold a ``.cls`` member, read as ``gt_label``.
        shuffle: permute the shards per epoch and shuffle samples through a buffer.
        shuffle_buffer: samples held by each worker's buffer (raw bytes, decoded on the way out).
        seed: of the shard permutation and the buffers; ``None``: rank 0's random seed, the same
            on every rank.
        skip_corrupt: replace an image that does not decode by the worker's next readable sample
            (the epoch keeps its length) and report it in ``metainfo['skipped_images']`` for
            ``SkippedImagesHook``, like ``SkipCorruptImages``; otherwise the error names the
            shard and member. A missing part map is never skipped.
        max_consecutive: with ``skip_corrupt``, give up after this many unreadable images in
            a row.
        lazy_init: count the shards at ``full_init()`` instead of now.
    """

    def __init__(self, shards: Union[str, Sequence[str]], batch_size: int,
                 pipeline: Sequence[Union[dict, Callable]] = (), data_root: str = '',
                 index: Optional[str] = None, with_label: bool = False, shuffle: bool = True,
                 shuffle_buffer: int = 1000, seed: Optional[int] = None,
                 skip_corrupt: bool = False, max_consecutive: int = 100,
                 lazy_init: bool = False):
        if batch_size < 1:
            raise ValueError(f'batch_size must be at least 1, got {batch_size}')
        patterns = [shards] if isinstance(shards, str) else list(shards)
        self.shards = [self._join(data_root, url) for p in patterns for url in expand_shards(p)]
        if not self.shards:
            raise UserInputError('ShardDataset got no shards. Fix: set shards to the packed '
                                 "files, e.g. 'train-{000000..000007}.tar'.")
        self.batch_size = batch_size
        self.index = self._join(data_root, index) if index else None
        self.with_label = with_label
        self.shuffle = shuffle
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.seed = sync_random_seed() if seed is None else seed
        self.skip_corrupt = skip_corrupt
        self.max_consecutive = max_consecutive
        self.rank, self.world_size = get_dist_info()
        self.pipeline = Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t
                                 for t in pipeline])
        # set by set_epoch in the main process, read by every worker when its epoch starts
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._last_epoch: Optional[int] = None
        self._counts: Optional[List[int]] = None
        self._metainfo: dict = {}
        if not lazy_init:
            self.full_init()

    @staticmethod
    def _join(root: str, path: str) -> str:
        return path if path.startswith('pipe:') or not root else osp.join(root, path)

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        """Read the samples per shard: from the index, else from the local shards' headers."""
        if self._counts is not None:
            return
        if self.index:
            self._counts = self._counts_from_index()
        else:
            piped = [url for url in self.shards if url.startswith('pipe:')]
            if piped:
                raise UserInputError(
                    f"ShardDataset cannot count the samples of '{piped[0]}' without reading "
                    'it whole. Fix: set index= to the index file pack_shards.py wrote '
                    "(e.g. 'train-index.json').")
            self._counts = [count_samples(url) for url in self.shards]
        total = sum(self._counts)
        if rank_batches(total, self.world_size, self.batch_size) == 0:
            raise UserInputError(
                f'The {len(self.shards)} shards hold {total} samples, less than one batch of '
                f'{self.batch_size} for each of {self.world_size} ranks. Fix: pack more '
                'samples, or lower the batch size (train_dataloader.batch_size and '
                'train_dataloader.dataset.batch_size).')

    def _counts_from_index(self) -> List[int]:
        try:
            index = json.loads(fileio.get_text(self.index))
        except FileNotFoundError:
            raise UserInputError(f"The shard index '{self.index}' does not exist. Fix: pack the "
                                 f'data with {_REPACK} (it writes NAME-index.json), or drop '
                                 'index= to count local shards.') from None
        except ValueError as exc:
            raise UserInputError(f"The shard index '{self.index}' is not JSON ({exc}). Fix: "
                                 f'repack the data with {_REPACK}.') from None
        if not isinstance(index, dict) or index.get('format') != INDEX_FORMAT:
            raise UserInputError(f"'{self.index}' is not a shard index of {_REPACK} (format "
                                 f'{INDEX_FORMAT!r}). Fix: point index= at its NAME-index.json.')
        sizes = {entry['file']: int(entry['samples']) for entry in index['shards']}
        if 'classes' in index:
            self._metainfo = dict(classes=tuple(index['classes']))
        counts = []
        for url in self.shards:
            names = [t for t in re.split(r'[\s/:=?#\'"]+', url) if t in sizes]
            if len(names) != 1:
                listed = ', '.join(list(sizes)[:3]) + (', ...' if len(sizes) > 3 else '')
                raise UserInputError(
                    f"The shard '{url}' is not in the index '{self.index}' (which lists "
                    f'{listed}). Fix: list the shards of that index, or pass its own index.')
            counts.append(sizes[names[0]])
        return counts

    def set_epoch(self, epoch: int) -> None:
        """Use the shard order and buffers of ``epoch`` from the next iteration on (every
        worker, persistent or not)."""
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        """Samples this rank trains per epoch, ``M * batch_size``."""
        self.full_init()
        return self.batch_size * rank_batches(sum(self._counts), self.world_size,
                                              self.batch_size)

    def __getitem__(self, idx: int):
        raise UserInputError(_NO_INDEX)

    def shard_order(self, epoch: int) -> np.ndarray:
        """Indices into ``shards`` in the order of ``epoch``'s sequence (all ranks agree)."""
        if not self.shuffle:
            return np.arange(len(self.shards))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))

    def __iter__(self) -> Iterator[dict]:
        self.full_init()
        epoch = int(self._epoch)
        if self.shuffle and epoch == self._last_epoch:
            print_log(f'ShardDataset: epoch {epoch} started again with the same shard order; '
                      "add dict(type='ShardEpochHook') to custom_hooks so that every epoch "
                      'reshuffles.', logger='current', level=logging.WARNING)
        self._last_epoch = epoch
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        num_batches = rank_batches(sum(self._counts), self.world_size, self.batch_size)
        start, stop = stream_range(num_batches, self.batch_size, self.rank, worker, workers)
        raw = self._read(self.shard_order(epoch), start, stop)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, self.rank, worker])
            raw = shuffle_buffer(raw, self.shuffle_buffer, rng)
        return self._decode(raw)

    def _read(self, order: np.ndarray, start: int, stop: int) -> Iterator[dict]:
        """The undecoded samples at positions ``[start, stop)`` of the sequence of ``order``."""
        first_index = np.concatenate([[0], np.cumsum(self._counts)])
        for piece, begin, end in locate([self._counts[i] for i in order], start, stop):
            shard = int(order[piece])
            url, got = self.shards[shard], begin
            for position, key, members in read_shard(url, begin, end):
                if members is not None:
                    got = position + 1
                    yield self._raw_sample(url, key, members, int(first_index[shard]) + position)
            if got != end:
                raise UserInputError(
                    f"The shard '{url}' ended after {got} samples, but "
                    f"{'the index ' + repr(self.index) if self.index else 'its headers'} "
                    f'promised {self._counts[shard]}. Fix: repack the data with {_REPACK} '
                    '(shard and index are written together), or copy the shard again.')

    def _raw_sample(self, url: str, key: str, members: Dict[str, bytes], idx: int) -> dict:
        images = [ext for ext in members if ext.lower() in IMAGE_EXTS]
        if len(images) != 1:
            raise UserInputError(
                f"Sample '{key}' in shard '{url}' has {len(images)} image members (found "
                f"{', '.join(f'{key}.{e}' for e in sorted(members))}), expected one. Fix: "
                f'repack the shard with {_REPACK}.')
        member = f'{key}.{images[0]}'
        results = dict(img_bytes=members[images[0]], img_path=f'{url}:{member}', shard=url,
                       member=member, sample_key=key, sample_idx=idx)
        if PART_EXT in members:
            results['part_bytes'] = members[PART_EXT]
        if self.with_label:
            try:
                results['gt_label'] = int(members[LABEL_EXT])
            except (KeyError, ValueError):
                raise UserInputError(
                    f"Sample '{key}' in shard '{url}' has no readable label '{key}.{LABEL_EXT}'"
                    f' (with_label=True). Fix: pack a labelled data set (class folders or an '
                    'annotation file), or set with_label=False.') from None
        return results

    def _decode(self, raw: Iterator[dict]) -> Iterator[dict]:
        """Run the pipeline on each sample; with ``skip_corrupt`` an unreadable image gives its
        place to the next readable sample (the first one of the stream at its end)."""
        skipped: List[str] = []
        fallback: Optional[dict] = None
        for results in raw:
            data = self._transform(results, skipped)
            if data is None:
                continue
            if fallback is None:
                fallback = results
            yield from self._with_replacements(data, results, skipped)
            skipped = []
        if skipped:
            if fallback is None:
                raise UserInputError(
                    f'None of the {len(skipped)} images of this stream could be read, from '
                    f'{skipped[0]} to {skipped[-1]}: the shards look broken. Fix: repack them '
                    f'with {_REPACK} from intact images.')
            yield from self._with_replacements(self._transform(fallback, []), fallback,
                                               skipped)

    def _transform(self, results: dict, skipped: List[str]) -> Optional[dict]:
        """The pipeline's output, or ``None`` after appending an unreadable image to
        ``skipped`` (with ``skip_corrupt``)."""
        try:
            data = self.pipeline(dict(results))
        except Exception as exc:  # noqa: BLE001  (re-raised unless a skippable image)
            unreadable = isinstance(exc, UnreadableShardImage) or is_unreadable_image(exc)
            if not (self.skip_corrupt and unreadable):
                raise
            skipped.append(results['img_path'])
            if len(skipped) >= self.max_consecutive:
                raise UserInputError(
                    f'{len(skipped)} images in a row could not be read, from {skipped[0]} to '
                    f'{skipped[-1]}: the shards look broken, not one file. Fix: repack them '
                    f'with {_REPACK} from intact images.') from None
            return None
        if data is None:
            raise UserInputError(
                f'A transform of the pipeline dropped sample {results["img_path"]} (it returned '
                'None): a shard stream must keep every sample to keep the epoch plan. Fix: '
                'remove that transform, or set it to keep every sample.')
        return data

    def _with_replacements(self, data: dict, results: dict, skipped: List[str]) -> Iterator[dict]:
        """``data`` in place of the first of the ``skipped`` images (tagged with all of them),
        then one more run of the pipeline on ``results`` per skipped image: ``1 + len(skipped)``
        outputs for as many positions of the stream."""
        if skipped:
            tag_skipped(data, skipped, 'ShardDataset')
        yield data
        for _ in range(len(skipped)):
            yield self.pipeline(dict(results))


@HOOKS.register_module()
class ShardEpochHook(Hook):
    """Tells a ``ShardDataset`` training set its epoch before each one (mmengine's
    ``DistSamplerSeedHook`` reaches samplers only, and a streamed data set has none), and
    checks before training that the data set plans batches of the dataloader's batch size."""

    priority = 'NORMAL'

    @staticmethod
    def _dataset(runner) -> ShardDataset:
        dataset = runner.train_loop.dataloader.dataset
        if isinstance(getattr(dataset, 'dataset', None), ShardDataset):
            raise UserInputError(_NO_INDEX)
        if not isinstance(dataset, ShardDataset):
            raise UserInputError(f'ShardEpochHook is in custom_hooks, but the training set is a '
                                 f'{type(dataset).__name__}, not a ShardDataset. Fix: remove '
                                 'the hook from custom_hooks.')
        return dataset

    def before_train(self, runner) -> None:
        loader = runner.train_loop.dataloader
        dataset = self._dataset(runner)
        if loader.batch_size != dataset.batch_size:
            raise UserInputError(
                f'train_dataloader.batch_size is {loader.batch_size} but '
                f'train_dataloader.dataset.batch_size is {dataset.batch_size}: ShardDataset '
                'plans epochs of whole batches. Fix: set both to the same value (--cfg-options '
                'train_dataloader.batch_size=N train_dataloader.dataset.batch_size=N).')

    def before_train_epoch(self, runner) -> None:
        self._dataset(runner).set_epoch(runner.train_loop.epoch)
