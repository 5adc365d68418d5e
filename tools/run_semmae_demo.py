"""The second demo: SemMAE end to end on the embedded MNIST-5k (stage 1 part learning from the
main job's MAE, stage 2 pretraining, fine-tune, linear probe and k-NN), next to plain MAE.

    python tools/run_semmae_demo.py [--work-dir work_dirs/demo] [--parts learned [kmeans]]

1. MNIST-5k and the main job's MAE checkpoint (pretrained here first if the main job has not run);
2. stage 1, for each of ``--parts``: part maps from that frozen MAE, 7 parts on the 7x7 grid.
   ``learned`` (the default): the learned part learner of the paper's Figure 1, trained with
   tools/train.py (configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py), its maps
   written by tools/part_learning/write_learned_parts.py (docs/semmae_stage1.md); ``kmeans``: the
   k-means baseline (tools/part_learning/learn_parts.py);
3. the same part maps of the segmentation demo's 1000 held-out digit scenes, scored against their
   digit masks (NMI / ARI / matched mIoU over every patch, next to a fixed grid);
4. stage 2 for each: SemMAE pretraining on the part-guided masks, with the MAE demo's budget
   (configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py);
5. fine-tune, linear-probe and k-NN-probe each as the main job does; one table with MAE.
"""
import json
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

from mim_plugins.apis import run_cli

from demo_stages import (KNN, PRETRAIN, Stages, evaluate, fitted, knn_probes, last_checkpoint,
                         parse_args, prepare_data, pretrain, print_table, run_tool)

SEMMAE = 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
LEARNER = 'configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py'
NAMES = {'learned': 'SemMAE learned', 'kmeans': 'SemMAE k-means'}
PROTOCOLS = ['fine-tune', 'linear probe', 'k-NN']
NUM_PARTS, GRID = 7, 7
DIGIT_SCENES = 'images/validation'  # the seg demo's held-out scenes, ADE20K layout


def learner_dir(work: str) -> str:
    """Where stage 1's part learner is trained."""
    return osp.join(work, 'part_learner')


def stage1_tool(parts: str, work: str, mae_ckpt: str, learner_epochs: Optional[int]) -> List[str]:
    """The command (less --data-root / --data-prefix / --part-root) that writes ``parts`` maps
    once stage 1 is fitted: learn_parts.py (which fits the centroids on its first run), or
    write_learned_parts.py with the learner trained into ``work/part_learner``."""
    if parts == 'kmeans':
        return ['tools/part_learning/learn_parts.py', '--config', PRETRAIN, '--checkpoint',
                mae_ckpt, '--num-parts', str(NUM_PARTS), '--grid', str(GRID)]
    # the config as trained: tools/train.py dumps it into the work dir under its own name
    config = osp.basename(fitted(LEARNER, learner_epochs, learner_dir(work)))
    return ['tools/part_learning/write_learned_parts.py', '--config',
            osp.join(learner_dir(work), config), '--checkpoint',
            last_checkpoint(learner_dir(work)), '--grid', str(GRID)]


def stage1(parts: str, work: str, data_root: str, mae_ckpt: str,
           learner_epochs: Optional[int]) -> str:
    """Fit stage 1 with ``parts`` and write the 7x7 part maps of the train images; returns
    their folder."""
    if parts == 'learned':
        run_tool(['tools/train.py', fitted(LEARNER, learner_epochs, learner_dir(work)),
                  '--work-dir', learner_dir(work), '--cfg-options',
                  f'train_dataloader.dataset.data_root={data_root}',
                  f'model.backbone.init_cfg.checkpoint={mae_ckpt}'])
    part_root = osp.join(data_root, 'part_maps', 'train' if parts == 'kmeans' else
                         'train_learned')
    run_tool(stage1_tool(parts, work, mae_ckpt, learner_epochs) + [
        '--data-root', data_root, '--data-prefix', 'train', '--part-root', part_root])
    return part_root


def digit_mask_scores(parts: List[str], work: str, seg_root: str, mae_ckpt: str,
                      learner_epochs: Optional[int],
                      train_roots: Dict[str, str]) -> Dict[str, Dict[str, float]]:
    """Write each stage 1's maps of the held-out digit scenes (k-means: the train images'
    centroids) and score them against the digit masks, with a 7-block grid as the control."""
    from mim_plugins.datasets.seg_data import prepare_mnist_seg
    from mim_plugins.evaluation.part_eval import digit_mask, score_grid, score_maps

    prepare_mnist_seg(seg_root)  # the segmentation demo's scenes (written once)
    images = osp.join(seg_root, DIGIT_SCENES)
    masks = osp.join(seg_root, 'annotations', 'validation')
    scores = {}
    for p in parts:
        out = osp.join(work, 'digit_scene_parts', p)
        extra = ['--centroids', osp.join(train_roots[p], 'centroids.pth')] \
            if p == 'kmeans' else []
        run_tool(stage1_tool(p, work, mae_ckpt, learner_epochs) + extra + [
            '--data-root', seg_root, '--data-prefix', DIGIT_SCENES, '--part-root', out])
        scores[NAMES[p]] = score_maps(images, masks, out, GRID, digit_mask, False)
    scores[f'fixed grid, {NUM_PARTS} blocks'] = score_grid(images, masks, GRID, NUM_PARTS,
                                                           digit_mask, False)
    with open(osp.join(work, 'digit_mask_part_scores.json'), 'w') as f:
        json.dump(scores, f, indent=1)
    print('\n[demo] part maps of the 1000 held-out digit scenes against their digit masks '
          f'(every patch of the {GRID}x{GRID} grid; {NUM_PARTS} parts, 2 true labels):')
    print('[demo] | parts | NMI | ARI | matched mIoU |')
    for name, s in scores.items():
        print(f"[demo] | {name} | {s['nmi']:.3f} | {s['ari']:.3f} | {s['miou']:.3f} |")
    return scores


def mae_results(work: str) -> Dict[Tuple[str, str], float]:
    """The main job's MAE numbers from its metrics files, where it has run into ``work``."""
    results = {}
    for proto in ('fine-tune', 'linear probe'):
        path = osp.join(work, f"{proto.replace(' ', '_')}_MAE", 'metrics.json')
        if osp.isfile(path):
            with open(path) as f:
                results[(proto, 'MAE')] = float(json.load(f)['accuracy/top1'])
    if osp.isfile(osp.join(work, 'knn_MAE.json')):
        with open(osp.join(work, 'knn_MAE.json')) as f:
            results[('k-NN', 'MAE')] = float(json.load(f)['accuracy/top1'])
    return results


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(__doc__.split('\n')[0], argv, extra=[
        ('--parts', dict(nargs='+', choices=['learned', 'kmeans'], default=['learned'],
                         help="stage 1: the learned part learner (the paper's), the k-means "
                         'baseline, or both side by side')),
        ('--learner-epochs', dict(type=int, help="override the part learner's epochs (10)")),
        ('--seg-data-root', dict(default='data/mnist5k_seg', help="the segmentation demo's "
                                 'digit scenes, written there if absent'))])
    parts = list(dict.fromkeys(args.parts))
    work = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root) + '/'
    previous = mae_results(work)
    mae_done = osp.isfile(osp.join(work, 'mae_pretrain', 'last_checkpoint')) and \
        len(previous) == len(PROTOCOLS)
    inits = [NAMES[p] for p in parts] + ([] if mae_done else ['MAE'])
    plan = ['data'] + ([] if mae_done else ['pretrain'])
    plan += ['part learner' if p == 'learned' else 'parts' for p in parts] + ['parts']
    plan += ['pretrain'] * len(parts) + [proto for proto in PROTOCOLS for _ in inits]
    stages = Stages(plan)
    prepare_data(stages, data_root)

    data_opt = [f'train_dataloader.dataset.data_root={data_root}']
    if mae_done:
        mae_ckpt = last_checkpoint(osp.join(work, 'mae_pretrain'))
        print(f'[demo] stage 1 uses the main job\'s MAE: {mae_ckpt}')
    else:
        stages.begin('MAE pretraining (the frozen ViT of stage 1, and the baseline)')
        mae_ckpt = pretrain(PRETRAIN, osp.join(work, 'mae_pretrain'), data_opt,
                            args.pretrain_epochs)
        stages.end()

    part_roots = {}
    for p in parts:
        stages.begin(f'SemMAE stage 1: {p} part maps from the frozen MAE')
        part_roots[p] = stage1(p, work, data_root, mae_ckpt, args.learner_epochs)
        stages.end()
    stages.begin('part maps of the held-out digit scenes against their digit masks')
    part_scores = digit_mask_scores(parts, work, osp.abspath(args.seg_data_root), mae_ckpt,
                                    args.learner_epochs, part_roots)
    stages.end()

    checkpoints = {} if mae_done else {'MAE': mae_ckpt}
    for p in parts:
        stages.begin(f'SemMAE stage 2 on {p} parts: pretraining on part-guided masks')
        part_opts = [f'train_dataloader.dataset.pipeline.1.part_root={part_roots[p]}',
                     'train_dataloader.dataset.pipeline.1.img_prefix='
                     f"{osp.join(data_root, 'train')}"]
        checkpoints[NAMES[p]] = pretrain(SEMMAE, osp.join(work, f'semmae_{p}_pretrain'),
                                         data_opt + part_opts, args.pretrain_epochs)
        stages.end()

    results = dict(previous) if mae_done else {}
    results.update(evaluate(stages, checkpoints, work, data_root, args.eval_epochs))
    results.update(knn_probes(stages, {name: (KNN, ckpt) for name, ckpt in checkpoints.items()},
                              work, data_root))
    print_table(results, PROTOCOLS, [NAMES[p] for p in parts] + ['MAE'],
                'top-1 accuracy on the 1000 MNIST-5k val images (500 labelled training '
                f'images), total {(time.time() - stages.start) / 60:.1f} min')
    print(f"[demo] part maps: {', '.join(part_roots.values())} "
          '(figure: python tools/visualization/vis_parts.py --help)')
    out = {f'{p} / {i}': v for (p, i), v in results.items()}
    out.update({f'digit masks / {name} / {k}': v for name, s in part_scores.items()
                for k, v in s.items()})
    return out


if __name__ == '__main__':
    run_cli(main)
