"""Official DINO (facebookresearch/dino) and iBOT (bytedance/ibot) ViT checkpoints -> the timm
names of :mod:`.convert`, whose table then maps them onto mmpretrain's ``VisionTransformer``.

Both codes train a timm-style ViT (their ``vision_transformer.py``: the names of convert.py's
table, a fused ``qkv`` with bias, LayerNorm eps 1e-6, no layer scale) wrapped as
``MultiCropWrapper(backbone, head)``, twice: a student (trained, inside DistributedDataParallel)
and a teacher (its moving average, the network both papers evaluate). Released files:

===========================================  ====================  ===========================
file                                         top level             parameter names
===========================================  ====================  ===========================
DINO backbone (``dino_vitbase16_pretrain``,  name -> tensor        timm names
``dino_deitsmall16_pretrain``)
iBOT backbone (``checkpoint_teacher.pth``,   ``state_dict``        timm names; the student's
``checkpoint_student.pth``)                                        also ``masked_embed``
training checkpoint (DINO's                  ``teacher``,          ``backbone.*``, ``head.*``;
``*_full_checkpoint.pth``, iBOT's            ``student``,          ``module.`` before them in
``checkpoint.pth``)                          ``epoch``, ``args``   the student (DDP), and in
                                                                   the teacher with BN heads
iBOT ``extract_backbone_weights.py           ``state_dict``        timm names, ``head.*``
--with_head true``
===========================================  ====================  ===========================

The projection heads (``DINOHead`` / ``iBOTHead``: ``mlp``, ``last_layer``, ``last_norm`` and
iBOT's patch-token ``mlp2``, ``last_layer2``, ``last_norm2``) and iBOT's mask token
``masked_embed`` serve pretraining only. They are left out, and their names are returned so that
the caller reports them.
"""
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

from torch import Tensor

from .convert import REQUIRED, CheckpointLayoutError, unwrap_state_dict

NETWORKS = ('teacher', 'student')
# DINOHead's / iBOTHead's layers (the 2s: iBOT's patch-token head); a fine-tuned classifier's
# ``head.weight`` does not match, so MAE's files keep theirs
HEAD = re.compile(r'head\.(mlp|last_layer|last_norm)2?(\..+)?')
MASK_TOKEN = 'masked_embed'
DDP, WRAPPER = 'module.', 'backbone.'  # DistributedDataParallel's, MultiCropWrapper's


class SelfDistillationLayoutError(CheckpointLayoutError):
    """A DINO / iBOT checkpoint that holds no ViT of the timm layout, or not the network asked."""


class Network(NamedTuple):
    """``state_dict`` of one network; ``network``: ``'teacher'`` / ``'student'`` when it was
    picked from a training checkpoint, None when the file holds one network only."""
    state_dict: Dict[str, Tensor]
    network: Optional[str]


class Backbone(NamedTuple):
    """``state_dict`` in timm names; ``dropped``: original names left out (heads, mask token),
    sorted; ``wrapped``: the names carried ``module.`` / ``backbone.`` prefixes."""
    state_dict: Dict[str, Tensor]
    dropped: List[str]
    wrapped: bool


def pick_network(checkpoint: Any, network: Optional[str] = None) -> Network:
    """``checkpoint[network]`` of a DINO / iBOT training checkpoint (``network`` None: the
    teacher), or the only state dict of any other file (:func:`.convert.unwrap_state_dict`).

    Raises ``SelfDistillationLayoutError`` when ``network`` is given for a file that holds one
    network, or names one the training checkpoint lacks.
    """
    if network is not None and network not in NETWORKS:
        raise ValueError(f'network must be one of {NETWORKS}, got {network!r}')
    held = [name for name in NETWORKS
            if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(name), Mapping)]
    if not held:
        if network is not None:  # asked for, so it must not pass unnoticed
            raise SelfDistillationLayoutError(
                f'--network {network} picks one of the two networks of a DINO / iBOT training '
                "checkpoint, but this file has no 'teacher' / 'student' entries: it holds one "
                'network only. Fix: leave --network out.')
        return Network(unwrap_state_dict(checkpoint), None)
    wanted = network or 'teacher'
    if wanted not in held:
        raise SelfDistillationLayoutError(
            f"This DINO / iBOT training checkpoint has no '{wanted}' network (it holds "
            f'{held}). Fix: pass --network {held[0]}.')
    return Network(dict(checkpoint[wanted]), wanted)


def _timm_vit_under(names: Mapping[str, Any], prefix: str) -> bool:
    return all(prefix + name in names for name in REQUIRED)


def strip_wrappers(network: Network) -> Backbone:
    """The ViT of ``network`` in timm names: DDP's ``module.`` and MultiCropWrapper's
    ``backbone.`` prefixes removed, projection heads and ``masked_embed`` dropped.

    A state dict with neither prefix nor head passes through unchanged (MAE's files), as does
    one with mmpretrain names (``backbone.layers.*``), which :mod:`.convert` then refuses.
    Raises ``SelfDistillationLayoutError`` when a picked or wrapped network is not a timm ViT.
    """
    names = {name[len(DDP):] if name.startswith(DDP) else name: name
             for name in network.state_dict}
    wrapped = any(name.startswith(DDP) for name in network.state_dict)
    # only where a timm ViT sits under it: mmpretrain's own backbone.* names must stay as they are
    if _timm_vit_under(names, WRAPPER):
        wrapped = True
        names = {name[len(WRAPPER):] if name.startswith(WRAPPER) else name: original
                 for name, original in names.items()}
    kept, dropped = {}, []
    for name, original in names.items():
        if HEAD.fullmatch(name) or name == MASK_TOKEN:
            dropped.append(original)
        else:
            kept[name] = network.state_dict[original]
    missing = [name for name in REQUIRED if name not in kept]
    if missing and (network.network or wrapped):
        what = (f'The {network.network} network of this DINO / iBOT training checkpoint'
                if network.network else 'This DINO / iBOT (module. / backbone.) state dict')
        found = sorted(kept)
        raise SelfDistillationLayoutError(
            f'{what} is not a ViT in the timm layout: {missing} missing (it has {found[:6]}'
            f'{" ..." if len(found) > 6 else ""}). Fix: convert a checkpoint of a DINO / iBOT '
            'ViT (vit_small, vit_base, vit_large); their ResNet, XCiT and Swin backbones have no '
            'mmpretrain VisionTransformer counterpart.')
    return Backbone(kept, sorted(dropped), wrapped)
