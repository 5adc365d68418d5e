"""A readable report of what a checkpoint did and did not fill in the model.

mmengine's ``load_state_dict`` (behind ``init_cfg=dict(type='Pretrained', ...)``, ``load_from``
and ``--resume``) warns about mismatching keys as two comma-joined lists, with shape mismatches
buried in torch's messages before them. Loading stays non-strict (a fine-tune *expects* new head
keys and unused decoder keys); this adds, after mmengine's own warning, one report: how many of
the model's tensors were loaded, then the keys missing from the checkpoint (left as
initialised), the checkpoint's keys the model does not use, and the shape mismatches, long lists
grouped by their first name component.
"""
from collections import Counter
from typing import Dict, List, Sequence

import mmengine.runner.checkpoint as mm_checkpoint
import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

# (the original, also when this module is imported twice, e.g. by importlib.reload)
_mmengine_load_state_dict = getattr(mm_checkpoint.load_state_dict, 'mmengine_original',
                                    mm_checkpoint.load_state_dict)


def summarise_keys(keys: Sequence[str], limit: int = 8) -> str:
    """``a, b, c`` for a few keys; ``neck.* (20), head.* (4)`` when there are more."""
    if len(keys) <= limit:
        return ', '.join(keys)
    groups = Counter(k.split('.', 1)[0] + ('.*' if '.' in k else '') for k in keys)
    return ', '.join(f'{name} ({n})' for name, n in groups.most_common())


def _shape_differs(model_state: Dict, checkpoint_state: Dict) -> List[str]:
    return [k for k in checkpoint_state if k in model_state
            and tuple(getattr(checkpoint_state[k], 'shape', ())) != tuple(model_state[k].shape)]


def checkpoint_report(model_state: Dict, checkpoint_state: Dict,
                      resized: Sequence[str] = ()) -> str:
    """The report for loading ``checkpoint_state`` into a model whose state dict is
    ``model_state`` (both name -> tensor); ``resized`` keys had another shape in the checkpoint
    but were loaded anyway, resized by the model's own load hooks (position embeddings,
    relative position tables)."""
    shape = [k for k in _shape_differs(model_state, checkpoint_state) if k not in resized]
    missing = [k for k in model_state if k not in checkpoint_state
               and not k.endswith('num_batches_tracked')]
    unused = [k for k in checkpoint_state if k not in model_state]
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


def load_state_dict(module, state_dict, strict: bool = False, logger=None) -> None:
    """mmengine's ``load_state_dict``, then :func:`checkpoint_report` (rank 0)."""
    model = module.module if is_model_wrapper(module) else module
    # a tensor of another shape that changes while loading was resized by a load hook
    current = model.state_dict()
    before = {k: current[k].detach().clone() for k in _shape_differs(current, state_dict)}
    _mmengine_load_state_dict(module, state_dict, strict=strict, logger=logger)
    if get_rank() == 0:
        after = model.state_dict()
        resized = [k for k, v in before.items() if not torch.equal(v, after[k])]
        print_log(checkpoint_report(after, state_dict, resized), logger=logger)


# mmengine looks the function up in its module at call time (PretrainedInit imports it inside
# __call__, Runner.load_checkpoint goes through _load_checkpoint_to_model), so every checkpoint
# load in a run that imported mim_plugins reports.
load_state_dict.mmengine_original = _mmengine_load_state_dict
mm_checkpoint.load_state_dict = load_state_dict
