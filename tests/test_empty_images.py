"""A 0-byte image and an empty image folder are one clear error naming the file or folder
(issue 21, item 7); with --skip-corrupt-images the 0-byte image is skipped and counted."""
import shutil

import pytest

from test_resilience import one_clear_error, options, train


@pytest.fixture
def empty_image_data(tmp_path, tiny_data):
    """The tiny data with one image truncated to 0 bytes."""
    data = tmp_path / 'data'
    shutil.copytree(tiny_data, data)
    empty = sorted((data / 'train' / '5').iterdir())[0]
    empty.write_bytes(b'')
    return f'{data}/', str(empty)


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_a_zero_byte_image_is_named(tmp_path, empty_image_data):
    data, empty = empty_image_data
    result = train('--work-dir', str(tmp_path / 'work'), *options(data, batch=20))
    error = one_clear_error(result, f'Corrupt or unreadable image {empty}', 'empty (0 bytes)',
                            '--skip-corrupt-images')
    assert 'cv2.error' not in result.stderr, error


@pytest.mark.slow
def test_skip_corrupt_images_skips_and_counts_a_zero_byte_image(tmp_path, empty_image_data):
    data, empty = empty_image_data
    work = tmp_path / 'work'
    result = train('--work-dir', str(work), '--skip-corrupt-images', *options(data, workers=2))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Epoch 1: skipped 1 unreadable images (1 so far' in result.stdout
    listed = [line.split('\t')[1] for line in
              (work / 'skipped_images.txt').read_text().splitlines() if line]
    assert listed == [empty]


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_an_empty_image_folder_is_named(tmp_path):
    empty = tmp_path / 'no_images'
    (empty / 'train').mkdir(parents=True)
    result = train('--work-dir', str(tmp_path / 'work'), *options(f'{empty}/'))
    error = one_clear_error(result, f"No images in the data folder '{empty}/train'", 'Fix:',
                            'data_root')
    assert 'Found 0 files' not in error
