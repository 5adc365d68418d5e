"""The benchmark's results as a Markdown table (what README.md shows)."""
from typing import List, Sequence, Tuple

# (result key, column title, format)
COLUMNS: Sequence[Tuple[str, str, str]] = (
    ('config', 'config', '{}'),
    ('batch_size', 'batch', '{}'),
    ('step_ms', 'step ms', '{:.1f}'),
    ('img_s', 'img/s', '{:.2f}'),
    ('gflop_per_img', 'GFLOP/img', '{:.2f}'),
    ('tflop_s', 'TFLOP/s', '{:.3f}'),
    ('peak_fraction', 'of matmul peak', '{:.0%}'),
    ('optimizer_ms', 'optimizer ms', '{:.0f}'),
    ('peak_rss_mib', 'peak RSS MiB', '{:.0f}'),
    ('cuda_peak_mib', 'CUDA peak MiB', '{:.0f}'),
    ('pipeline_img_s', 'pipeline img/s/worker', '{:.1f}'),
)

# ``tools/benchmark.py parts``: SemMAE stage 1, per image
PARTS_COLUMNS: Sequence[Tuple[str, str, str]] = (
    ('what', 'stage 1', '{}'),
    ('batch_size', 'batch', '{}'),
    ('ms_per_img', 'ms/img', '{:.2f}'),
    ('img_s', 'img/s', '{:.2f}'),
    ('gflop_per_img', 'GFLOP/img', '{:.2f}'),
    ('tflop_s', 'TFLOP/s', '{:.3f}'),
    ('peak_fraction', 'of matmul peak', '{:.0%}'),
    ('peak_rss_mib', 'peak RSS MiB', '{:.0f}'),
    ('cuda_peak_mib', 'CUDA peak MiB', '{:.0f}'),
)


def _row(cells: Sequence[str]) -> str:
    return '| ' + ' | '.join(cells) + ' |'


def table(results: List[dict], columns: Sequence[Tuple[str, str, str]] = COLUMNS) -> str:
    """One row per measured config (or stage-1 step, ``PARTS_COLUMNS``); a missing value is
    shown as ``-``."""
    lines = [_row([title for _, title, _ in columns]), _row(['---'] * len(columns))]
    for result in results:
        lines.append(_row([fmt.format(result[key]) if result.get(key) is not None else '-'
                           for key, _, fmt in columns]))
    return '\n'.join(lines)


def comparison_table(comparisons: List[dict]) -> str:
    """Ours vs the stock implementation, timed in alternating rounds in one process."""
    lines = [_row(['ours', 'stock', 'ours img/s', 'stock img/s', 'speed ours / stock',
                   'GFLOP/img ours / stock']), _row(['---'] * 6)]
    for c in comparisons:
        lines.append(_row([c['ours'], c['stock'], f"{c['ours_img_s']:.2f}",
                           f"{c['stock_img_s']:.2f}", f"{c['ratio']:.3f}",
                           f"{c['ours_gflop_per_img']:.2f} / {c['stock_gflop_per_img']:.2f}"]))
    return '\n'.join(lines)
