"""A model (or its backbone) from a config and a checkpoint, for figures and the web demo.

Unlike mmengine's non-strict loading, which only warns, a checkpoint that does not fit the
config's architecture is an error here: a figure drawn from randomly initialised weights
looks plausible and is wrong. The demo and the figures draw what an algorithm's
``reconstruct(inputs, mask, input_mask)`` returns; configs of mmpretrain's stock ``MAE`` /
``MaskFeat`` / ``BEiT`` are built as ours (:func:`masked_algorithm`), which have the same
parameters and that method.
"""
import copy
import os.path as osp
from typing import Dict, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from ..utils.errors import MissingFileError, UserInputError

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# ImageNet's, for configs that define no data preprocessor.
_DEFAULT_PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
                             std=[58.395, 57.12, 57.375], to_rgb=True)


def read_config(config: str) -> Config:
    """``Config.fromfile`` with a clear error for a missing or broken file; sets the default
    scope the config asks for (mmpretrain when it names none)."""
    if not osp.isfile(config):
        raise MissingFileError(f"Config file '{config}' does not exist. Fix: pass the config "
                               'the checkpoint was trained with (e.g. configs/mae/...py).')
    try:
        cfg = Config.fromfile(config)
    except Exception as exc:  # noqa: BLE001  (syntax errors, missing _base_, ...)
        raise UserInputError(f"Config file '{config}' could not be read: "
                             f'{type(exc).__name__}: {exc}. Fix: pass a valid mmpretrain '
                             'config.') from None
    if 'model' not in cfg:
        raise UserInputError(f"Config '{config}' defines no model. Fix: pass a model config "
                             '(configs/<method>/...py), not a data set or runtime base file.')
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def _read_checkpoint(checkpoint: str) -> object:
    """Whatever ``checkpoint`` holds, with a clear error for a missing or unreadable file."""
    from ..engine import read_checkpoint

    if not osp.isfile(checkpoint):
        raise MissingFileError(f"Checkpoint '{checkpoint}' does not exist. Fix: pass a .pth "
                               'file written by tools/train.py (e.g. work_dirs/.../epoch_N.pth).')
    try:
        return read_checkpoint(checkpoint)
    except Exception as exc:  # noqa: BLE001  (truncated file, not a torch file, ...)
        raise UserInputError(f"Checkpoint '{checkpoint}' could not be read "
                             f'({type(exc).__name__}: {exc}). Fix: pass a complete .pth file '
                             'written by tools/train.py or a model converter.') from None


def trained_epochs(checkpoint: str) -> Optional[int]:
    """How many epochs ``checkpoint`` had trained (``meta['epoch']`` of a tools/train.py file),
    or None when it does not say (a bare state dict, a converted file)."""
    state = _read_checkpoint(checkpoint)
    meta = state.get('meta') if isinstance(state, dict) else None
    epoch = meta.get('epoch') if isinstance(meta, dict) else None
    return epoch if isinstance(epoch, int) else None


def read_state_dict(checkpoint: str) -> Dict[str, torch.Tensor]:
    """The state dict of ``checkpoint`` (a tools/train.py file or a bare state dict)."""
    state = _read_checkpoint(checkpoint)
    state = state.get('state_dict', state) if isinstance(state, dict) else state
    if isinstance(state, dict) and ('patch_embed.proj.weight' in state
                                    or isinstance(state.get('model'), dict)):
        raise UserInputError(
            f"Checkpoint '{checkpoint}' has the official repositories' parameter names. Fix: "
            'convert it first: python tools/model_converters/official_to_mmpretrain.py SRC DST.')
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise UserInputError(f"Checkpoint '{checkpoint}' holds no state dict of tensors. Fix: "
                             'pass a checkpoint written by tools/train.py or a model converter.')
    return state


def load_checked(module: nn.Module, state: Dict[str, torch.Tensor], checkpoint: str,
                 config: str) -> None:
    """Load ``state`` into ``module`` after checking that every weight of ``module`` is there
    with its shape; weights the module lacks (a SupMAE branch read into an MAE) are ignored."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
             for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        found = ', '.join(wrong[:2]) if wrong else (
            f'it lacks {len(missing)} of the {len(own)} weights, e.g. {missing[:3]}')
        raise UserInputError(
            f"Checkpoint '{checkpoint}' is of another architecture than the model of config "
            f"'{config}' ({found}). Fix: choose the config the checkpoint was trained with, "
            'or a checkpoint of this config (a full pretraining checkpoint when the figure '
            'needs the decoder).')
    module.load_state_dict({k: state[k] for k in own}, strict=True)


def _frozen(module: nn.Module) -> nn.Module:
    module.eval()  # (mmpretrain's ViT.train() returns None: no chaining)
    return module.requires_grad_(False)


def build_preprocessor(cfg: Config) -> nn.Module:
    """The config's data preprocessor (normalisation and RGB order exactly as in training)."""
    from mmpretrain.registry import MODELS

    pre = cfg.model.get('data_preprocessor') or cfg.get('data_preprocessor')
    return MODELS.build(dict(pre) if pre else dict(_DEFAULT_PREPROCESSOR))


def _registered(model_type: object) -> Optional[type]:
    """The class a config's ``type`` names (a registered name or the class itself), or None."""
    from mmpretrain.registry import MODELS

    if isinstance(model_type, type):
        return model_type
    return MODELS.get(model_type) if isinstance(model_type, str) else None


def masked_algorithm(model_cfg: dict) -> dict:
    """A copy of ``model_cfg`` in which mmpretrain's stock ``MAE`` (with ``MAEViT``),
    ``MaskFeat`` and ``BEiT`` are ``MaskedMAE`` (with ``SemMAEViT``), ``MaskedMaskFeat`` and
    ``MaskedBEiT``: the same parameters, so the same checkpoints load, plus ``reconstruct``.
    Any other model (ours, a classifier, a subclass of a stock one) is copied unchanged."""
    from mmpretrain.models import BEiT, MAE, MAEViT, MaskFeat

    ours = {MAE: ('MaskedMAE', {MAEViT: 'SemMAEViT'}), MaskFeat: ('MaskedMaskFeat', {}),
            BEiT: ('MaskedBEiT', {})}
    model_cfg = copy.deepcopy(model_cfg)
    found = ours.get(_registered(model_cfg.get('type')))
    if found is None:
        return model_cfg
    model_cfg['type'], backbones = found
    backbone = model_cfg.get('backbone')
    if isinstance(backbone, dict) and _registered(backbone.get('type')) in backbones:
        backbone['type'] = backbones[_registered(backbone['type'])]
    return model_cfg


def can_reconstruct(model_cfg: dict) -> bool:
    """Whether the demo and the figures can draw the model of ``model_cfg``: its type, after
    :func:`masked_algorithm`, is a registered class with a ``reconstruct`` method."""
    model_type = masked_algorithm(model_cfg).get('type')
    return callable(getattr(_registered(model_type), 'reconstruct', None))


def need_reconstruct(model: nn.Module, who: str) -> None:
    """A ``UserInputError`` unless ``model`` has ``reconstruct``; ``who`` starts the message
    (e.g. ``'The demo'``)."""
    if not callable(getattr(model, 'reconstruct', None)):
        raise UserInputError(
            f'{who} cannot show a {type(model).__name__} model: it has no '
            'reconstruct(inputs, mask, input_mask) method saying what it predicts. Fix: choose '
            'a pretraining config and its checkpoint (MAE, SupMAE, SemMAE, MaskFeat, BEiT, or '
            'one of them with the SemanticMIM bottleneck), not a fine-tuned classifier; for a '
            'new algorithm, give it a reconstruct method as mim_plugins/models/masked_mae.py '
            'does.')


def load_model(config: str, checkpoint: str) -> Tuple[nn.Module, Config]:
    """The config's whole model (data preprocessor included; stock MAE / MaskFeat / BEiT as
    :func:`masked_algorithm` maps them) with the checkpoint's weights, in eval mode on the CPU.
    Never calls ``init_weights``, so nothing is downloaded (BEiT's tokenizer, pretrained
    ``init_cfg`` files): every weight comes from ``checkpoint``, except a target generator the
    checkpoint lacks (see :func:`_target_generator_weights`)."""
    from mmpretrain.registry import MODELS

    cfg = read_config(config)
    model_cfg = masked_algorithm(cfg.model)
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor', None))
    try:
        model = MODELS.build(model_cfg)
    except Exception as exc:  # noqa: BLE001
        raise UserInputError(f"The model of config '{config}' could not be built "
                             f'({type(exc).__name__}: {exc}). Fix: pass an mmpretrain model '
                             'config that imports mim_plugins (custom_imports).') from None
    state = read_state_dict(checkpoint)
    state.update(_target_generator_weights(model, cfg, state, config))
    load_checked(model, state, checkpoint, config)
    return _frozen(model), cfg


def _local_file(path: str) -> Optional[str]:
    """``path`` if it is a file here (as given, else relative to the repository), never a URL."""
    if not path or '://' in path:
        return None
    for candidate in (path, osp.join(_ROOT, path)):
        if osp.isfile(candidate):
            return candidate
    return None


def _target_generator_weights(model: nn.Module, cfg: Config, state: Dict[str, torch.Tensor],
                              config: str) -> Dict[str, torch.Tensor]:
    """``target_generator.*`` weights for a checkpoint that has none (an official BEiT
    checkpoint carries no DALL-E tokenizer): from the local file the tokenizer's
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` names, else the module's own random
    initialisation (a missing file or a URL: nothing downloads). Sets
    ``model.target_generator.weights_from``: ``'checkpoint'``, the file read, or None (random);
    and ``wanted_file``, the file the config names (may be empty)."""
    generator = getattr(model, 'target_generator', None)
    if not isinstance(generator, nn.Module):
        return {}
    own = {f'target_generator.{k}' for k in generator.state_dict()}
    init = (cfg.model.get('target_generator') or {}).get('init_cfg') or {}
    wanted = init.get('checkpoint', '') if isinstance(init, dict) and \
        init.get('type') == 'Pretrained' else ''
    generator.wanted_file = wanted
    if not own or own & state.keys():
        generator.weights_from = 'checkpoint'  # (a partial set is load_checked's error)
        return {}
    found = _local_file(wanted)
    generator.weights_from = found
    if found:
        weights = read_state_dict(found)
        prefix = 'target_generator.'
        weights = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in weights.items()}
        load_checked(generator, weights, found, config)
    return {f'target_generator.{k}': v for k, v in generator.state_dict().items()}


def load_backbone(config: str, checkpoint: str) -> Tuple[nn.Module, nn.Module]:
    """``(backbone, data preprocessor)`` of the config, the backbone with the checkpoint's
    ``backbone.*`` weights (or all of them for a bare backbone file), in eval mode. Builds only
    the backbone: pretraining-only parts (decoders, tokenizers) are neither built nor needed."""
    from mmpretrain.registry import MODELS

    cfg = read_config(config)
    backbone_cfg: Optional[dict] = cfg.model.get('backbone')
    if not backbone_cfg:
        raise UserInputError(f"Config '{config}' has no model.backbone. Fix: pass a ViT config.")
    backbone = MODELS.build(backbone_cfg)
    state = read_state_dict(checkpoint)
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    load_checked(backbone, state, checkpoint, config)
    return _frozen(backbone), build_preprocessor(cfg)


@torch.no_grad()
def normalise(preprocessor: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float: what the model (its first view) sees."""
    return _views(preprocessor, images, images)[0]


@torch.no_grad()
def normalise_second_view(preprocessor: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, h, w, 3) uint8 RGB -> (B, 3, h, w) float, normalised as a two-view preprocessor
    (BEiT's ``TwoNormDataPreprocessor``) normalises the tokenizer's view: with ``second_mean``
    / ``second_std`` (BEiT: DALL-E's pixel map, 0..255 -> 0.1..0.9)."""
    if not hasattr(preprocessor, 'second_mean'):
        raise UserInputError(f'{type(preprocessor).__name__} has no second view. Fix: use the '
                             "config's own data preprocessor (TwoNormDataPreprocessor for BEiT).")
    return _views(preprocessor, images, images)[1]


def _views(preprocessor: nn.Module, first: torch.Tensor, second: torch.Tensor) -> tuple:
    """Both views through the preprocessor itself (one for a one-view preprocessor). The images
    go in BGR, as ``LoadImageFromFile`` reads them, so ``to_rgb`` applies as in training."""
    def bgr(images: torch.Tensor) -> torch.Tensor:
        return images.flip(-1).permute(0, 3, 1, 2).contiguous()

    if hasattr(preprocessor, 'second_mean'):  # takes [view, second view], as BEiT's pipeline
        return tuple(preprocessor(dict(inputs=[bgr(first), bgr(second)], data_samples=None),
                                  False)['inputs'])
    return (preprocessor(dict(inputs=bgr(first), data_samples=None), False)['inputs'], )


def denormalise(preprocessor: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`normalise`: (B, 3, H, W) float -> (B, H, W, 3) uint8 RGB."""
    mean = preprocessor.mean.view(1, -1, 1, 1).to(images.dtype)
    std = preprocessor.std.view(1, -1, 1, 1).to(images.dtype)
    pixels = (images * std + mean).clamp(0, 255).round().byte()
    if not getattr(preprocessor, '_channel_conversion', True):  # model works in BGR
        pixels = pixels.flip(1)
    return pixels.permute(0, 2, 3, 1)
