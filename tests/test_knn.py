"""The k-NN probe: the vote against a brute-force loop, separable data, and tools/knn_probe.py
end to end on tiny generated data (raw pixels, a tiny ViT checkpoint, bad input)."""
import glob
import importlib.util
import json
import math
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, run_env

KNN_CFG = 'configs/mae/benchmarks/vit-tiny-p4_1xb250-knn-k20_mnist5k-500.py'
PIXELS_CFG = 'configs/mae/benchmarks/pixels_1xb64-linear-coslr-15e_mnist5k-500.py'
PRETRAIN_CFG = 'configs/mae/mae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
IN1K_CFGS = sorted(glob.glob(osp.join(ROOT, 'configs', '*', 'benchmarks', '*knn*in1k.py')))


def brute_force_scores(train, labels, test, k, T, num_classes):
    """The DINO vote written out: for each query, every cosine, the k largest, their votes."""
    scores = np.zeros((len(test), num_classes))
    for i, q in enumerate(test):
        sims = [float(np.dot(q, x) / (np.linalg.norm(q) * np.linalg.norm(x))) for x in train]
        order = sorted(range(len(train)), key=lambda j: -sims[j])[:k]
        for j in order:
            scores[i, labels[j]] += math.exp(sims[j] / T)
    return scores


@pytest.mark.parametrize('k,T', [(1, 0.07), (5, 0.07), (20, 0.5), (60, 0.07)])
def test_knn_matches_brute_force(k, T):
    from mim_plugins.evaluation import knn_classify
    rng = np.random.default_rng(k)
    train, test = rng.normal(size=(60, 8)), rng.normal(size=(25, 8))
    labels = rng.integers(0, 4, size=60)
    expected = brute_force_scores(train, labels, test, k, T, num_classes=6)
    got = knn_classify(torch.tensor(train), torch.tensor(labels), torch.tensor(test), k=k,
                       temperature=T, num_classes=6, chunk_size=7)  # several chunks
    assert got.shape == (25, 6)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert (got[:, 4:] == 0).all()  # classes nobody votes for


def test_knn_is_perfect_on_separable_clusters():
    from mim_plugins.evaluation import knn_accuracy, knn_classify
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(7, 32, generator=gen) * 5
    labels = torch.arange(7).repeat_interleave(30)
    feats = centres[labels] + torch.randn(len(labels), 32, generator=gen)
    train, test = feats[::2], feats[1::2]
    scores = knn_classify(train, labels[::2], test, k=20, temperature=0.07, num_classes=7)
    assert knn_accuracy(scores, labels[1::2], 7) == {'accuracy/top1': 100.0,
                                                     'accuracy/top5': 100.0}
    three = labels < 3  # fewer than 5 classes: top-1 only
    scores = knn_classify(feats[three][::2], labels[three][::2], feats[three][1::2], k=20)
    assert knn_accuracy(scores, labels[three][1::2], 3) == {'accuracy/top1': 100.0}


def test_k_larger_than_the_train_set_is_an_error():
    from mim_plugins.evaluation import knn_classify
    from mim_plugins.utils.errors import UserInputError
    with pytest.raises(UserInputError, match=r'k=11 .* train set has 10\. Fix: choose k '
                                             r'between 1 and 10'):
        knn_classify(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), torch.randn(3, 4),
                     k=11)


def test_feature_choice():
    from mim_plugins.evaluation.knn import select_feature
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float).reshape(2, 5, 3)
    assert torch.equal(select_feature(tokens, 'cls', 1), tokens[:, 0])
    assert torch.equal(select_feature(tokens, 'mean', 1), tokens[:, 1:].mean(1))
    assert torch.equal(select_feature(tokens, 'mean', 2), tokens[:, 2:].mean(1))


# ------------------------------------------------------------------- the tool, end to end
@pytest.fixture(scope='module')
def blocks_data(tmp_path_factory):
    """10 classes x 4 images: class c is a bright 7x7 block in cell c of a 4x4 grid, plus noise
    (separable in pixel space). 20 labelled train images (2 per class), 10 val images."""
    from mim_plugins.datasets import write_custom_dataset
    root = str(tmp_path_factory.mktemp('blocks'))
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 4)
    images = rng.integers(0, 40, size=(40, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, col = divmod(int(c), 4)
        images[i, 7 * r:7 * r + 7, 7 * col:7 * col + 7] = 255
    write_custom_dataset(root, images, labels, num_val=1, num_labelled=2, seed=0)
    return root + '/'


def data_options(root):
    return [f'{k}_dataloader.{o}' for k in ('train', 'val') for o in (
        f'dataset.data_root={root}', 'num_workers=0', 'persistent_workers=False')]


def knn_tool(*args):
    return subprocess.run([sys.executable, 'tools/knn_probe.py', *args], cwd=ROOT,
                          env=run_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    """A (randomly initialised) MAE pretraining checkpoint of the demo ViT, as train.py
    writes it: the encoder under 'backbone.', the decoder under 'neck.'."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(osp.join(ROOT, PRETRAIN_CFG)).model)
    model.init_weights()
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


def load_tool():
    spec = importlib.util.spec_from_file_location('knn_probe', osp.join(ROOT, 'tools',
                                                                        'knn_probe.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_split(root, ann):
    """(images normalised as the demo's data preprocessor does, labels) of an annotation file."""
    images, labels = [], []
    with open(osp.join(root, 'meta', ann)) as f:
        for line in f.read().split('\n'):
            if line.strip():
                rel, label = line.split()
                folder = 'val' if ann == 'val.txt' else 'train'
                img = np.array(Image.open(osp.join(root, folder, rel)).convert('RGB'), np.float32)
                images.append((torch.tensor(img).permute(2, 0, 1) - 33.3) / 78.6)
                labels.append(int(label))
    return torch.stack(images), labels


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_tool_on_raw_pixels_is_perfect_on_separable_images(blocks_data, tmp_path):
    out = tmp_path / 'knn.json'
    result = knn_tool(PIXELS_CFG, '--out', str(out), '--cfg-options', *data_options(blocks_data))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed == json.loads(out.read_text())
    assert printed['accuracy/top1'] == 100.0 and printed['accuracy/top5'] == 100.0
    assert (printed['k'], printed['temperature']) == (20, 0.07)
    assert (printed['num_train'], printed['num_val'], printed['feature_dims']) == (20, 10, 2352)
    assert printed['features'] == 'RawPixels (no weights)'


@pytest.mark.parametrize('feature,layer', [('cls', -1), ('mean', 2)])
def test_tool_matches_an_independent_computation(blocks_data, tiny_checkpoint, feature, layer):
    """Features of the stock VisionTransformer loaded by hand, images read with PIL and
    normalised by hand, the brute-force vote: the same top-1 as the tool."""
    from mmpretrain.models import VisionTransformer
    tool = load_tool()
    got = tool.main([KNN_CFG, tiny_checkpoint, '--k', '5', '--temperature', '0.1',
                     '--feature', feature, '--layer', str(layer), '--device', 'cpu',
                     '--cfg-options', *data_options(blocks_data)])

    vit = VisionTransformer(arch=dict(embed_dims=192, num_layers=6, num_heads=3,
                                      feedforward_channels=768), img_size=28, patch_size=4,
                            out_type='cls_token' if feature == 'cls' else 'featmap',
                            out_indices=[layer])
    state = torch.load(tiny_checkpoint, weights_only=False)['state_dict']
    vit.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith('backbone.')})
    vit.eval()
    with torch.no_grad():
        def feats(images):
            out = vit(images)[0]
            return out if feature == 'cls' else out.flatten(2).mean(-1)
        train, train_labels = read_split(blocks_data, 'train_labelled.txt')
        val, val_labels = read_split(blocks_data, 'val.txt')
        scores = brute_force_scores(feats(train).numpy(), train_labels, feats(val).numpy(),
                                    k=5, T=0.1, num_classes=10)
    expected = 100.0 * np.mean(scores.argmax(1) == np.array(val_labels))
    assert got['accuracy/top1'] == pytest.approx(expected)
    assert got['features'].endswith(f'{feature} token{"s" if feature == "mean" else ""} of '
                                    f'layer {layer}')


@pytest.mark.slow  # >= 5 CPU-s: a tool in a subprocess or a training (docs/testing.md)
def test_tool_rejects_a_checkpoint_without_backbone_weights(blocks_data, tmp_path):
    bad = tmp_path / 'head_only.pth'
    torch.save({'state_dict': {'head.fc.weight': torch.zeros(10, 192)}}, bad)
    result = knn_tool(KNN_CFG, str(bad), '--cfg-options', *data_options(blocks_data))
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'holds no weights of the backbone' in lines[0], lines
    assert 'Fix:' in lines[0]


def test_tool_rejects_unlabelled_data_a_too_large_k_and_a_bad_layer(blocks_data,
                                                                    tiny_checkpoint):
    from mim_plugins.utils.errors import UserInputError
    tool = load_tool()
    args = [KNN_CFG, tiny_checkpoint, '--device', 'cpu', '--cfg-options',
            *data_options(blocks_data)]
    with pytest.raises(UserInputError, match='train_dataloader has no labels'):
        tool.main(args + ['train_dataloader.dataset.with_label=False'])
    with pytest.raises(UserInputError, match='k=21 .* train set has 20'):
        tool.main(args[:2] + ['--k', '21'] + args[2:])
    with pytest.raises(UserInputError, match='--layer 6 is not a layer of this 6-layer ViT'):
        tool.main(args[:2] + ['--layer', '6'] + args[2:])
    with pytest.raises(UserInputError, match='has no weights, so checkpoint'):
        tool.main([PIXELS_CFG] + args[1:])


@pytest.mark.parametrize('config', IN1K_CFGS, ids=lambda p: osp.relpath(p, ROOT))
def test_imagenet_knn_configs_build_their_extractor(config):
    """One per pretraining family; the ViT-B of the linear probe, k=20, T=0.07, cls token."""
    from mim_plugins.evaluation import build_extractor
    from mim_plugins.visualization.loading import read_config
    cfg = read_config(config)
    assert cfg.knn_cfg == dict(k=20, temperature=0.07, feature='cls', layer=-1)
    assert cfg.train_dataloader.dataset.type == 'CustomDataset'
    extractor, what = build_extractor(cfg, None, cfg.knn_cfg.feature, cfg.knn_cfg.layer)
    assert what == 'random initialisation, cls token of layer -1'
    assert extractor(torch.zeros(1, 3, 224, 224)).shape == (1, 768)
    assert len(IN1K_CFGS) == 3
