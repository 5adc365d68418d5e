"""The second demo: SemMAE end to end on the embedded MNIST-5k (stage 1 part learning from the
main job's MAE, stage 2 pretraining, fine-tune and linear probe), next to plain MAE.

    python tools/run_semmae_demo.py [--work-dir work_dirs/demo] [--parts kmeans|learned]

1. MNIST-5k and the main job's MAE checkpoint (pretrained here first if the main job has not run);
2. stage 1: part maps from that frozen MAE, 7 parts on the 7x7 grid: ``--parts kmeans`` (the
   default) the k-means baseline (tools/part_learning/learn_parts.py); ``--parts learned`` the
   learned part learner of the paper's Figure 1, trained with tools/train.py
   (configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py), its maps written by
   tools/part_learning/write_learned_parts.py (docs/semmae_stage1.md);
3. stage 2: SemMAE pretraining on the part-guided masks, with the MAE demo's budget
   (configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py);
4. fine-tune and linear-probe it as the main job does, and print it next to plain MAE.
"""
import json
import os.path as osp
import time
from typing import Dict, List, Optional

from mim_plugins.apis import run_cli

from demo_stages import (PRETRAIN, Stages, evaluate, last_checkpoint, parse_args, prepare_data,
                         pretrain, print_table, run_tool)

SEMMAE = 'configs/semmae/semmae_vit-tiny-p4_1xb64-coslr-15e_mnist5k.py'
LEARNER = 'configs/semmae/semmae-parts_vit-tiny-p4_1xb64-adain-10e_mnist5k.py'


def stage1(parts: str, work: str, data_root: str, mae_ckpt: str) -> str:
    """Write the 7x7 part maps of the train images with ``parts``; returns their folder."""
    if parts == 'kmeans':
        part_root = osp.join(data_root, 'part_maps', 'train')
        run_tool(['tools/part_learning/learn_parts.py', '--config', PRETRAIN, '--checkpoint',
                  mae_ckpt, '--data-root', data_root, '--data-prefix', 'train', '--part-root',
                  part_root, '--num-parts', '7', '--grid', '7'])
        return part_root
    part_root = osp.join(data_root, 'part_maps', 'train_learned')
    learner_dir = osp.join(work, 'part_learner')
    run_tool(['tools/train.py', LEARNER, '--work-dir', learner_dir, '--cfg-options',
              f'train_dataloader.dataset.data_root={data_root}',
              f'model.backbone.init_cfg.checkpoint={mae_ckpt}'])
    run_tool(['tools/part_learning/write_learned_parts.py', '--config',
              osp.join(learner_dir, osp.basename(LEARNER)), '--checkpoint',
              last_checkpoint(learner_dir), '--data-root', data_root, '--data-prefix', 'train',
              '--part-root', part_root, '--grid', '7'])
    return part_root


def mae_results(work: str) -> Dict:
    """The main job's MAE numbers from its metrics files, if it has run into ``work``."""
    results = {}
    for proto in ('fine-tune', 'linear probe'):
        path = osp.join(work, f"{proto.replace(' ', '_')}_MAE", 'metrics.json')
        if osp.isfile(path):
            with open(path) as f:
                results[(proto, 'MAE')] = float(json.load(f)['accuracy/top1'])
    return results


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(__doc__.split('\n')[0], argv, extra=[(
        '--parts', dict(choices=['kmeans', 'learned'], default='kmeans',
                        help='stage 1: the k-means baseline or the learned part learner'))])
    work = osp.abspath(args.work_dir)
    data_root = osp.abspath(args.data_root) + '/'
    previous = mae_results(work)
    mae_done = osp.isfile(osp.join(work, 'mae_pretrain', 'last_checkpoint')) and len(previous) == 2
    plan = ['data'] + ([] if mae_done else ['pretrain']) + ['parts', 'pretrain']
    plan += (['fine-tune', 'linear probe'] * (1 if mae_done else 2))
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

    stages.begin(f'SemMAE stage 1: {args.parts} part maps from the frozen MAE')
    part_root = stage1(args.parts, work, data_root, mae_ckpt)
    stages.end()

    stages.begin('SemMAE stage 2: pretraining on part-guided masks')
    part_opts = [f'train_dataloader.dataset.pipeline.1.part_root={part_root}',
                 f"train_dataloader.dataset.pipeline.1.img_prefix={osp.join(data_root, 'train')}"]
    semmae_ckpt = pretrain(SEMMAE, osp.join(work, 'semmae_pretrain'), data_opt + part_opts,
                           args.pretrain_epochs)
    stages.end()

    inits = {'SemMAE': semmae_ckpt} if mae_done else {'SemMAE': semmae_ckpt, 'MAE': mae_ckpt}
    results = dict(previous) if mae_done else {}
    results.update(evaluate(stages, inits, work, data_root, args.eval_epochs))
    print_table(results, ['fine-tune', 'linear probe'], ['SemMAE', 'MAE'],
                'top-1 accuracy on the 1000 MNIST-5k val images (500 labelled training '
                f'images), total {(time.time() - stages.start) / 60:.1f} min')
    print(f'[demo] part maps: {part_root} (figure: python tools/visualization/vis_parts.py --help)')
    return {f'{p} / {i}': v for (p, i), v in results.items()}


if __name__ == '__main__':
    run_cli(main)
