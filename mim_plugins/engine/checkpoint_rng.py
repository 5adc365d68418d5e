"""The random state a checkpoint needs for an exact resume.

mmengine checkpoints hold the model, optimizer, schedulers and message hub, but not the random
generators, so a resumed run re-seeds and draws different crops and masks from then on. The
state of every generator the training process draws from (Python's ``random``, NumPy's global
generator, torch's CPU and CUDA generators) is captured per process here; ``AtomicCheckpointHook``
stores one per rank in the message hub (saved with the checkpoint) and
``ResumableEpochBasedTrainLoop`` restores this rank's before the first resumed batch.
"""
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.logging import MessageHub

#: message-hub key of the per-rank states (a list indexed by rank)
RNG_KEY = 'rng_states'


def capture_rng_state() -> dict:
    """This process's generator states (a picklable dict)."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Put back the states of :func:`capture_rng_state` (CUDA's only when CUDA is in use)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def record_rng_states(message_hub: MessageHub) -> None:
    """Store every rank's state in ``message_hub`` (a collective: call it on all ranks)."""
    message_hub.update_info(RNG_KEY, all_gather_object(capture_rng_state()))


def take_rng_state(message_hub: MessageHub) -> Optional[dict]:
    """This rank's recorded state, removed from ``message_hub``; None if there is none or the
    world size changed (then the ranks' streams cannot be matched to the saved ones)."""
    states: Optional[List[dict]] = message_hub.pop_info(RNG_KEY)
    if not states or len(states) != get_world_size():
        return None
    return states[get_rank()]
