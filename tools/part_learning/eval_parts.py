"""Part discovery against ground truth: the learned part learner vs k-means on the same frozen
features vs a fixed spatial grid, on generated scenes whose parts are defined by place, not
colour (mim_plugins/datasets/part_scenes.py).

    python tools/part_learning/eval_parts.py [--work-dir work_dirs/part_eval] [--num-parts 4]

1. writes the scenes (train 1000, held-out test 200, 32² px) and their per-pixel part labels;
2. pretrains the frozen ViT: a small MAE on the train scenes
   (configs/semmae/part_eval/mae_vit-mini-p4_1xb64-coslr-5e_partscenes-32px.py);
3. trains the learned part learner on it
   (.../semmae-parts_vit-mini-p4_1xb16-adain-4e_partscenes-32px.py)
   and writes its test part maps (write_learned_parts.py);
4. fits the k-means baseline on the train scenes' features of the same ViT and writes its test
   maps with those centroids (learn_parts.py);
5. prints NMI / ARI / Hungarian mIoU over the test scenes' foreground patches, with the grid
   control, and writes them to WORK_DIR/scores.json.
``--seeds 0 1 2 3`` repeats it all per seed (other scenes, MAE, learner and k-means) into
WORK_DIR/seed_S and prints each seed's table and the mean and standard deviation over seeds.
Every stage whose output exists is reused (rerun to resume); pass a new --work-dir to start over.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))  # demo_schedule

from demo_schedule import refit_config  # noqa: E402

from mim_plugins.apis import UserInputError, run_cli  # noqa: E402

MAE = 'configs/semmae/part_eval/mae_vit-mini-p4_1xb64-coslr-5e_partscenes-32px.py'
LEARNER = ('configs/semmae/part_eval/'
           'semmae-parts_vit-mini-p4_1xb16-adain-4e_partscenes-32px.py')
SIZE, GRID = 32, 8  # 32² scenes, 4² patches


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/part_eval')
    parser.add_argument('--num-parts', type=int, default=4,
                        help='parts of every method (the scenes: background, head, body, legs)')
    parser.add_argument('--num-train', type=int, default=1000)
    parser.add_argument('--num-test', type=int, default=200)
    parser.add_argument('--mae-epochs', type=int, help='override the MAE epochs (5)')
    parser.add_argument('--learner-epochs', type=int, help='override the learner epochs (4)')
    parser.add_argument('--learner-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help="the learner's --cfg-options, e.g. model.attention.normalisation="
                        'space model.diversity_weight=2 (its choices: docs/semmae_stage1.md)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--seeds', type=int, nargs='+',
                        help='several seeds, each into WORK_DIR/seed_S, and their mean and '
                        'standard deviation (instead of --seed)')
    return parser.parse_args(argv)


def run(args: List[str]) -> None:
    cmd = [sys.executable] + args
    print('[part-eval] $ ' + ' '.join(cmd[1:]), flush=True)
    # The stages import the same mim_plugins as this driver (this checkout, not an installed one).
    path = os.environ.get('PYTHONPATH')
    env = dict(os.environ, PYTHONPATH=ROOT + (os.pathsep + path if path else ''))
    if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
        raise UserInputError(f"stage failed: {' '.join(args)}. Fix: see its error above, then "
                             'rerun this command (finished stages are reused).')


def train(config: str, work_dir: str, options: List[str],
          epochs: Optional[int] = None) -> Tuple[str, str]:
    """tools/train.py ``config`` into ``work_dir`` unless it finished there. ``epochs``: another
    length, with the recipe's schedule refitted to it (a config written to
    ``work_dir/schedule/``, as the demos' length flags do). Returns (the last checkpoint, the
    config as trained: tools/train.py's dump, options applied)."""
    if epochs is not None:
        config = refit_config(osp.join(ROOT, config), epochs, osp.join(work_dir, 'schedule'))
    done = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(done):
        run(['tools/train.py', config, '--work-dir', work_dir, '--cfg-options'] + options)
    with open(done) as f:
        return f.read().strip(), osp.join(work_dir, osp.basename(config))


def format_table(scores: Dict[str, Dict[str, float]]) -> str:
    lines = ['| parts | NMI | ARI | matched mIoU |', '|---|---|---|---|']
    for name, s in scores.items():
        lines.append(f"| {name} | {s['nmi']:.3f} | {s['ari']:.3f} | {s['miou']:.3f} |")
    return '\n'.join(lines)


def summarise(per_seed: Dict[int, Dict[str, Dict[str, float]]]) -> Dict[str, Dict[str, str]]:
    """``{seed: {method: {score: value}}}`` -> ``{method: {score: 'mean ± std'}}`` over seeds
    (the sample standard deviation; 0 for one seed)."""
    import numpy as np

    first = next(iter(per_seed.values()))
    out = {}
    for method, scores in first.items():
        out[method] = {}
        for key in scores:
            values = np.array([per_seed[s][method][key] for s in per_seed])
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            out[method][key] = f'{values.mean():.3f} ± {std:.3f}'
    return out


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    if not 2 <= args.num_parts <= 255:
        raise UserInputError(f'--num-parts {args.num_parts} is outside 2..255. Fix: pass e.g. 4.')
    work = osp.abspath(args.work_dir)
    if not args.seeds:
        return evaluate_seed(args, args.seed, work)
    per_seed = {s: evaluate_seed(args, s, osp.join(work, f'seed_{s}'))
                for s in dict.fromkeys(args.seeds)}
    summary = summarise(per_seed)
    with open(osp.join(work, 'scores.json'), 'w') as f:
        json.dump(dict(seeds=per_seed, summary=summary), f, indent=1)
    print(f'\nMean ± standard deviation over seeds {list(per_seed)}:')
    print('| parts | NMI | ARI | matched mIoU |\n|---|---|---|---|')
    for name, s in summary.items():
        print(f"| {name} | {s['nmi']} | {s['ari']} | {s['miou']} |")
    return dict(seeds=per_seed, summary=summary)


def evaluate_seed(args: argparse.Namespace, seed_value: int, work: str) -> Dict:
    """Every stage for one seed into ``work``; returns ``{method: dict(nmi, ari, miou)}``."""
    from mim_plugins.datasets.part_scenes import write_part_scenes
    from mim_plugins.evaluation.part_eval import score_grid, score_maps

    data = osp.join(work, 'data') + '/'
    if not osp.isfile(osp.join(data, 'done')):
        print(f'[part-eval] writing {args.num_train} + {args.num_test} scenes to {data}')
        write_part_scenes(data, args.num_train, args.num_test, size=SIZE, seed=seed_value)
        open(osp.join(data, 'done'), 'w').close()
    seed = [f'randomness.seed={seed_value}', 'train_dataloader.num_workers=1',
            'train_dataloader.persistent_workers=False']
    mae, _ = train(MAE, osp.join(work, 'mae'),
                   [f'train_dataloader.dataset.data_root={data}'] + seed, args.mae_epochs)
    learner, learner_cfg = train(LEARNER, osp.join(work, 'learner'),
                                 [f'train_dataloader.dataset.data_root={data}',
                                  f'model.backbone.init_cfg.checkpoint={mae}',
                                  f'model.num_parts={args.num_parts}'] + seed
                                 + args.learner_options,
                                 args.learner_epochs)
    test, labels = osp.join(data, 'test'), osp.join(data, 'labels', 'test')
    maps = {name: osp.join(work, 'maps', name) for name in ('learned', 'kmeans_train', 'kmeans')}
    run(['tools/part_learning/write_learned_parts.py', '--config', learner_cfg, '--checkpoint',
         learner, '--data-root', data, '--data-prefix', 'test', '--part-root', maps['learned'],
         '--num-workers', '0', '--no-progress'])
    kmeans = ['tools/part_learning/learn_parts.py', '--config', MAE, '--checkpoint', mae,
              '--data-root', data, '--num-parts', str(args.num_parts), '--num-workers', '0',
              '--seed', str(seed_value), '--no-progress']
    run(kmeans + ['--data-prefix', 'train', '--part-root', maps['kmeans_train']])
    run(kmeans + ['--data-prefix', 'test', '--part-root', maps['kmeans'], '--centroids',
                  osp.join(maps['kmeans_train'], 'centroids.pth')])
    k = args.num_parts
    scores = {
        f'learned part learner (ours, Figure 1), K={k}': score_maps(test, labels,
                                                                    maps['learned'], GRID),
        f'k-means of the same frozen features (baseline), K={k}': score_maps(
            test, labels, maps['kmeans'], GRID),
        f'fixed spatial grid (control), K={k}': score_grid(test, labels, GRID, k),
    }
    with open(osp.join(work, 'scores.json'), 'w') as f:
        json.dump(scores, f, indent=1)
    print(f'Part discovery, seed {seed_value}, on {args.num_test} held-out scenes (foreground '
          f'patches of a {GRID}x{GRID} grid; 3 true parts: head, body, legs):')
    print(format_table(scores))
    return scores


if __name__ == '__main__':
    run_cli(main)
