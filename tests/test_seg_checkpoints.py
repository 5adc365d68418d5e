"""Each pretraining method's checkpoint loads into the segmentation backbone of its configs_seg/
configs with no encoder key missing, through the configs' own init_cfg (prefix 'backbone.').

The pretraining config of a segmentation config is found from its checkpoint path,
``work_dirs/{pretraining config name}/epoch_{max_epochs}.pth``, the file tools/train.py writes
for that config; pretraining configs outside configs/ are listed in EXTRA. Models are built at
2 blocks of their real width (the key names do not depend on the depth).
"""
import glob
import os.path as osp
import re
from functools import lru_cache

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from conftest import ROOT

SEG_CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(
    osp.join(ROOT, 'configs_seg', '**', '*.py'), recursive=True) if '_base_' not in p)
# (pretraining config, segmentation config): checkpoints of mmpretrain's own pretraining configs
# go into the same backbones as ours. Add a line to check another pair.
# mmpretrain's own BEiT pretrains with BEiT's shared relative bias, ours with SemanticMIM's
# absolute positions: its checkpoints go into our configs with BEiT's position options
BEIT_RELATIVE = dict(use_abs_pos_emb=False, use_rel_pos_bias=True)
EXTRA = [
    ('mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
     'configs_seg/beit/beit-base_upernet_8xb2-160k_ade20k-640x640.py'),
    ('mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py',
     'configs_seg/beit/beit-base_linear_8xb60-25e_voc12-448x448.py'),
    ('mmpretrain::maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py',
     'configs_seg/maskfeat/maskfeat-base_upernet_8xb2-160k_ade20k-640x640.py'),
    ('mmpretrain::maskfeat/maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k.py',
     'configs_seg/maskfeat/maskfeat-base_linear_8xb60-25e_voc12-448x448.py'),
]
# work dirs that are not named after their config
WORK_DIRS = {
    'work_dirs/demo/mae_pretrain': 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'}
BASE_2_BLOCKS = dict(embed_dims=768, num_layers=2, num_heads=12, feedforward_channels=3072)


@lru_cache(maxsize=None)
def pretraining_config(seg_config: str) -> str:
    """The pretraining config whose checkpoint ``seg_config`` loads (from the path)."""
    checkpoint = Config.fromfile(osp.join(ROOT, seg_config)).model.backbone.init_cfg.checkpoint
    match = re.fullmatch(r'(work_dirs/.+)/epoch_(\d+)\.pth', checkpoint)
    assert match, f'{seg_config}: {checkpoint} is not WORK_DIR/epoch_N.pth'
    work_dir, epochs = match.groups()
    config = WORK_DIRS.get(work_dir)
    if config is None:
        found = glob.glob(osp.join(ROOT, 'configs', '**', osp.basename(work_dir) + '.py'),
                          recursive=True)
        assert len(found) == 1, f'{seg_config}: no pretraining config writes {work_dir}'
        config = osp.relpath(found[0], ROOT)
    assert Config.fromfile(osp.join(ROOT, config)).train_cfg.max_epochs == int(epochs), (
        f'{seg_config}: {config} does not end at epoch {epochs}')
    return config


def test_every_seg_checkpoint_is_written_by_a_pretraining_config():
    configs = {seg: pretraining_config(seg) for seg in SEG_CONFIGS}
    assert configs['configs_seg/mae/mae-base_upernet_8xb2-160k_ade20k-512x512.py'] == \
        'configs/mae/mae_vit-base-p16_8xb512-coslr-1600e_in1k.py'
    # every pretraining family is evaluated by both protocols
    for family in ('mae/mae_', 'supmae/', 'semmae/', 'beit/beit_', 'beit/beit-bottleneck',
                   'maskfeat/maskfeat_', 'maskfeat/maskfeat-bottleneck_', 'mae/mae-bottleneck'):
        segs = [s for s, p in configs.items() if p.startswith('configs/' + family)]
        assert any('ade20k' in s for s in segs) and any('voc12' in s for s in segs), family


@lru_cache(maxsize=None)
def pretrained_state(config: str) -> dict:
    """State dict of the pretraining model of ``config`` (ViT-B at 2 blocks), as a checkpoint
    holds it. Tokenizers / target generators are left out: they are not the encoder."""
    from mmpretrain.registry import MODELS
    if '::' in config:
        from mmengine.hub import get_config
        model = get_config(config).model
    else:
        model = Config.fromfile(osp.join(ROOT, config)).model
    if model.backbone.get('arch') in ('b', 'base'):
        model.backbone.arch = BASE_2_BLOCKS
    model.pop('target_generator', None)
    if 'decoder_depth' in (model.get('neck') or {}):
        model.neck.decoder_depth = 1
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        state = MODELS.build(model).state_dict()
    # random values, so that "loaded" and "left as built" (often zeros) differ
    gen = torch.Generator().manual_seed(0)
    return {k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
            for k, v in state.items()}


def _seg_backbone(seg_config: str, checkpoint: str = None, **overrides):
    from mmseg.registry import MODELS
    backbone = Config.fromfile(osp.join(ROOT, seg_config)).model.backbone
    backbone.update(overrides)
    if backbone.arch == 'base':
        backbone.arch = BASE_2_BLOCKS
        backbone.out_indices = [1]
        backbone.frozen_stages = min(backbone.get('frozen_stages', -1), 2)
    if checkpoint:
        backbone.init_cfg.checkpoint = checkpoint
    else:
        backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(backbone)


@pytest.mark.parametrize('pretrain,seg', [(None, s) for s in SEG_CONFIGS] + EXTRA,
                         ids=lambda v: v and osp.basename(v))
def test_pretrained_checkpoint_fills_every_encoder_tensor(pretrain, seg, tmp_path):
    state = pretrained_state(pretrain or pretraining_config(seg))
    encoder = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}

    # no key of the segmentation backbone is missing from the checkpoint (after the stock load
    # hooks: position embedding resized, shared relative position bias copied to each block);
    # only the index buffers of the relative position bias are rebuilt rather than loaded
    overrides = BEIT_RELATIVE if pretrain and 'beit' in pretrain else {}
    result = _seg_backbone(seg, **overrides).load_state_dict(dict(encoder), strict=False)
    assert [k for k in result.missing_keys if not k.endswith('relative_position_index')] == []

    # and the config's own init_cfg really loads them
    checkpoint = str(tmp_path / 'pretrained.pth')
    torch.save({'state_dict': state}, checkpoint)
    backbone = _seg_backbone(seg, checkpoint, **overrides)
    backbone.init_weights()
    loaded = backbone.state_dict()
    same_shape = [k for k, v in encoder.items() if k in loaded and loaded[k].shape == v.shape]
    for key in same_shape:
        assert torch.equal(loaded[key], encoder[key]), key
    # the others are the position tables the load hooks resize
    resized = set(loaded) - set(same_shape)
    assert all(k == 'pos_embed' or '.relative_position_' in k for k in resized)
    shared = encoder.get('rel_pos_bias.relative_position_bias_table')
    if shared is not None:  # BEiT: every block's table from the shared one, cls rows as they were
        for i in range(2):
            table = loaded[f'layers.{i}.attn.relative_position_bias_table']
            assert table.shape[0] == (2 * backbone.patch_resolution[0] - 1) ** 2 + 3
            assert torch.equal(table[-3:], shared[-3:])
    if 'pos_embed' in loaded:  # resized to the input's patch grid, the cls slot kept
        assert loaded['pos_embed'].shape[1] == 1 + backbone.patch_resolution[0] ** 2
        assert torch.equal(loaded['pos_embed'][:, 0], encoder['pos_embed'][:, 0])
