"""Compare our models with golden outputs of the official implementations.

    python tools/analysis/official_parity.py tests/fixtures/official/*.pt

For each fixture: convert its official state dict with our converter, build our model with the
fixture's sizes and options, run its inputs and print one line per output (max|Δ| against the
fixture's tolerance) and the gradient check (every tensor the official code trains gets the
same gradient norm from ours, and nothing else gets one). Exits 1 when any line fails, 2 when a
file cannot be checked (the message names the file and the fix).
"""
import argparse
import sys
from typing import List, Optional

import torch

from mim_plugins.apis import run_cli
from mim_plugins.fidelity import check


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('fixtures', nargs='+', help='golden fixture files (.pt)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the fixtures were made on one thread; results do not depend on it
    failed = 0
    for path in args.fixtures:
        for line in check(path):
            print(line)
            failed += not line.ok
    print(f'{failed} failing line(s) in {len(args.fixtures)} fixture(s)')
    return 1 if failed else 0


if __name__ == '__main__':
    run_cli(lambda: sys.exit(main()))
