"""Benchmarks of pretraining configs (``tools/benchmark.py``): step throughput, FLOP/s against
the measured matmul peak, peak memory, data-pipeline throughput, ours vs stock side by side,
and SemMAE stage 1's cost per image (``tools/benchmark.py parts``, :mod:`.parts`)."""
from .measure import compare, load_config, measure_config
from .peak import matmul_peak
from .step import TrainStep

__all__ = ['TrainStep', 'compare', 'load_config', 'matmul_peak', 'measure_config']
