"""Weighted k-NN accuracy of a frozen encoder (DINO's protocol: cosine similarity, k=20,
T=0.07, votes weighted by exp(cos / T)), for any pretraining checkpoint.

    python tools/knn_probe.py CONFIG [CHECKPOINT] [--k 20] [--temperature 0.07] \
        [--feature cls|mean] [--layer -1] [--out knn.json] [--cfg-options KEY=VALUE ...]

CONFIG is a classification / linear-probe config (configs/*/benchmarks/*knn*.py): its
model.backbone is built and loaded with the checkpoint's ``backbone.*`` weights, its train set
(labelled; read through the val pipeline, without augmentation) is the bank and its val set the
queries. Without CHECKPOINT the backbone keeps its random initialisation (a baseline). The
config's ``knn_cfg`` gives the defaults of k, temperature, feature and layer. Prints the result
as one JSON line (top-1, and top-5 when there are >= 5 classes, in %).
"""
import argparse
import json
from typing import Dict, List, Optional

from mmengine.config import DictAction

from mim_plugins.apis import run_cli
from mim_plugins.apis.checks import check_data_paths
from mim_plugins.apis.common import checkpoint_arg
from mim_plugins.evaluation import run_knn_probe  # noqa: also registers RawPixels
from mim_plugins.visualization.loading import read_config

DEFAULTS = dict(k=20, temperature=0.07, feature=None, layer=-1)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='classification config: backbone, labelled train and val')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint with the encoder under backbone. (omit: random init)')
    parser.add_argument('--k', type=int, help='neighbours per query (default 20)')
    parser.add_argument('--temperature', type=float, help='T of the vote weight exp(cos / T) '
                        '(default 0.07)')
    parser.add_argument('--feature', choices=['cls', 'mean'],
                        help="a ViT's cls token or mean patch token (default cls)")
    parser.add_argument('--layer', type=int, help='ViT layer whose tokens are the feature, '
                        '0-based; -1 (default): the last, after the final norm')
    parser.add_argument('--batch-size', type=int, help='images per forward pass')
    parser.add_argument('--device', help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--out', help='also write the result to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. val_dataloader.dataset.data_root=...')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    cfg = read_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'backbone' in cfg.get('model', {}):
        cfg.model.backbone.init_cfg = None  # the checkpoint is the one argument that loads
    check_data_paths(cfg, ('train_dataloader', 'val_dataloader'))
    opts = dict(DEFAULTS, **cfg.get('knn_cfg', {}))
    opts.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    result = run_knn_probe(cfg, checkpoint_arg(args.checkpoint, 'The'), device=args.device,
                           batch_size=args.batch_size, **opts)
    print(json.dumps(result), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    run_cli(main)
