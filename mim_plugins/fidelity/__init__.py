"""Parity with the official implementations, checked against their golden outputs.

``check(path)`` loads one fixture (``tests/fixtures/official/*.pt``) and runs the check of its
``method``: SemanticMIM backbones (outputs and gradients; a few AdamW steps for
``semanticmim_maskfeat_train``), SupMAE, SemMAE's mask counts, MAE-pytorch. ``tools/analysis/
official_parity.py`` prints the lines and exits 1 when one fails.
"""
from typing import List

from .common import FixtureError, Line, load_fixture


def check(path: str) -> List[Line]:
    """Every :class:`Line` of the fixture at ``path``; ``FixtureError`` for an unusable file."""
    # each imports the models it builds
    from . import mae_pytorch, semanticmim, semanticmim_train, semmae, supmae
    checks = {**{method: semanticmim.run for method in semanticmim.METHODS},
              semanticmim_train.METHOD: semanticmim_train.run,
              **{method: mae_pytorch.run for method in mae_pytorch.METHODS},
              'supmae': supmae.run, 'semmae_counts': semmae.run}
    fx = load_fixture(path)
    if fx['method'] not in checks:
        raise FixtureError(f"'{path}': unknown method {fx['method']!r}; known: {sorted(checks)}. "
                           'Fix: pass a fixture of one of those official implementations.')
    return checks[fx['method']](fx, path)


__all__ = ['FixtureError', 'Line', 'check']
