"""A readable report of what a checkpoint did and did not fill in the model.

mmengine's ``load_state_dict`` (behind ``init_cfg=dict(type='Pretrained', ...)``, ``load_from``
and ``--resume``) warns about mismatching keys as two comma-joined lists, with shape mismatches
buried in torch's messages before them. Loading stays non-strict (a fine-tune *expects* new head
keys and unused decoder keys); :class:`LoadReporter` adds, before mmengine's own warning, one
report: how many of the model's tensors were loaded, then the keys missing from the checkpoint
(left as initialised), the checkpoint's keys the model does not use, the shape mismatches and
the tensors the model's load hooks resized, long lists grouped by their first name component.

Nothing is reported unless asked: wrap a load in ``with LoadReporter(model):``, or add
``CheckpointReportHook`` to a run (``tools/train.py`` and ``tools/test.py`` do).
"""
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import nn


def summarise_keys(keys: Sequence[str], limit: int = 8) -> str:
    """``a, b, c`` for a few keys; ``neck.* (20), head.* (4)`` when there are more."""
    if len(keys) <= limit:
        return ', '.join(keys)
    groups = Counter(k.split('.', 1)[0] + ('.*' if '.' in k else '') for k in keys)
    return ', '.join(f'{name} ({n})' for name, n in groups.most_common())


def _shape_differs(model_state: Dict, checkpoint_state: Dict) -> List[str]:
    return [k for k in checkpoint_state if k in model_state
            and tuple(getattr(checkpoint_state[k], 'shape', ())) != tuple(model_state[k].shape)]


def load_mismatch(model_state: Dict, checkpoint_state: Dict) -> Tuple[List[str], List[str],
                                                                      List[str]]:
    """(model keys missing from the checkpoint, checkpoint keys the model does not use, keys
    whose shapes differ) for loading ``checkpoint_state`` into a model with ``model_state``."""
    missing = [k for k in model_state if k not in checkpoint_state
               and not k.endswith('num_batches_tracked')]
    unused = [k for k in checkpoint_state if k not in model_state]
    return missing, unused, _shape_differs(model_state, checkpoint_state)


def checkpoint_report(model_state: Dict, checkpoint_state: Dict,
                      resized: Sequence[str] = ()) -> str:
    """The report for loading ``checkpoint_state`` into a model whose state dict is
    ``model_state`` (both name -> tensor); ``resized`` keys had another shape in the checkpoint
    but were loaded anyway, resized by the model's own load hooks (position embeddings,
    relative position tables)."""
    missing, unused, shape = load_mismatch(model_state, checkpoint_state)
    shape = [k for k in shape if k not in resized]
    loaded = len(model_state) - len(missing) - len(shape)
    lines = [f'Checkpoint report: loaded {loaded} of the model\'s {len(model_state)} tensors.']
    if missing:
        lines.append(f'  not in the checkpoint, left as initialised ({len(missing)}): '
                     f'{summarise_keys(missing)}')
    if unused:
        lines.append(f'  in the checkpoint, not used by the model ({len(unused)}): '
                     f'{summarise_keys(unused)}')
    if shape:
        pairs: List[str] = [f'{k} (checkpoint {tuple(checkpoint_state[k].shape)}, model '
                            f'{tuple(model_state[k].shape)})' for k in shape]
        lines.append(f'  different shape, not loaded ({len(shape)}): {"; ".join(pairs)}')
    if resized:
        lines.append(f'  resized to the model\'s shape and loaded ({len(resized)}): '
                     f'{summarise_keys(list(resized))}')
    return '\n'.join(lines)


class LoadReporter:
    """Logs :func:`checkpoint_report` for the next ``load_state_dict`` into ``module`` (mmengine's
    or torch's), then stops watching; a load into a model that contains ``module`` is that
    model's to report, and is ignored. Use as ``with LoadReporter(model): model.init_weights()``
    or call :meth:`remove` when no load is coming.

    It watches through ``module``'s own load hooks: a pre-hook, put first so that it sees the
    state dict before the module's hooks resize entries in it (mmpretrain's position embedding
    and relative position tables), notes the checkpoint's tensors and copies the model's tensors
    whose shape differs; a post-hook, which torch and mmengine call when the whole module is
    loaded, reports. A tensor of another shape was resized by a load hook if the module's hooks
    gave its entry the model's shape, or (hooks of submodules edit a copy) if it changed."""

    def __init__(self, module: nn.Module, logger: str = 'current') -> None:
        self.logger = logger
        self._checkpoint: Optional[Dict] = None
        self._loading: Dict = {}
        self._before: Dict[str, torch.Tensor] = {}
        pre = module.register_load_state_dict_pre_hook(self._note)
        # the order torch gives prepended forward hooks: this one runs before the module's own
        module._load_state_dict_pre_hooks.move_to_end(pre.id, last=False)
        self._handles = [pre, module.register_load_state_dict_post_hook(self._report)]

    def _note(self, module: nn.Module, state_dict: Dict, prefix: str, *args) -> None:
        if prefix:  # loaded as part of a larger model
            return
        self._checkpoint, self._loading = dict(state_dict), state_dict  # (hooks edit the latter)
        current = module.state_dict()
        self._before = {k: current[k].detach().clone()
                        for k in _shape_differs(current, self._checkpoint)}

    def _report(self, module: nn.Module, incompatible_keys) -> None:
        if self._checkpoint is None:
            return
        after = module.state_dict()
        resized = [k for k, v in self._before.items() if not torch.equal(v, after[k]) or
                   tuple(getattr(self._loading.get(k), 'shape', ())) == tuple(v.shape)]
        print_log(checkpoint_report(after, self._checkpoint, resized), logger=self.logger)
        self.remove()

    def remove(self) -> None:
        """Stop watching (also when no load came)."""
        for handle in self._handles:
            handle.remove()
        self._checkpoint, self._loading, self._before = None, {}, {}

    def __enter__(self) -> 'LoadReporter':
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
