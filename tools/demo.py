"""The main job: ``make demo`` runs it on embedded data; ``--recipe full`` runs the real recipes.

    python tools/demo.py [--stages card pretrain ...] [--seeds 0 1 2] [--work-dir work_dirs/demo]
        [--device cpu] [--jobs 2] [--quick] [--force]
    python tools/demo.py --recipe demo-long --seeds 0 1 2     # 8x the pre-training: about 2 hours on 2 cores
    python tools/demo.py --recipe full --data-root /data [--gpus 8]   # real ImageNet, COCO, ADE20K

Stages (each skipped when it has finished before; an interrupted training stage resumes from its
last checkpoint; ``--force`` reruns). ``card``, ``data`` and ``masks`` run once; the others once per
seed of ``--seeds``, under ``WORK_DIR/seed<k>/``:
* ``card``: params/MACs table of every DyViT variant (mmengine's FlopAnalyzer, fused attention
  counted) and a dense forward of DyViT-T on a real photo (scikit-image's astronaut), saving a
  picture of the four feature maps.
* ``data``: the demo datasets (tools/make_demo_data.py): the labelled COCO- and ADE-style sets and
  a much larger unlabelled pool of the same domain for pre-training; with ``--recipe full``, a
  check that ``DATA_ROOT/imagenet/{train,val}``, ``DATA_ROOT/coco/{annotations,train2017,val2017}``
  and ``DATA_ROOT/ade/ADEChallengeData2016`` exist.
* ``masks``: the paper's Figure 2 (per-unit masking frequency, random vs complementary).
* ``pretrain`` / ``pretrain-mae``: CoMA / MAE pre-training with the same budget (DyViT-N on the
  pool; DyViT-B on ImageNet with ``full``), the backbone checkpoint converted for downstream use
  (and CoMA's reconstruction picture).
* ``det`` / ``det-mae`` / ``det-scratch``: Mask R-CNN from the CoMA, the MAE checkpoint or random
  initialisation, evaluated with CocoMetric (prediction pictures for the first seed).
* ``seg`` / ``seg-mae`` / ``seg-scratch``: the same for UperNet, evaluated with IoUMetric.
* ``report``: the final table, mean ± sample std over the seeds, and wall time per stage; also
  written as ``WORK_DIR/report.json``.

With ``--jobs 2`` (the default) independent stages run side by side, one CPU thread each when
there is no GPU (the scratch stages do not wait for pre-training); each line of a stage's output is
prefixed with its name (and seed), and mmengine's logger prints each training stage's ETA.
"""
import argparse
import os.path as osp

from coma.demo import RECIPES, STAGES, run_demo

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES)
    p.add_argument('--seeds', nargs='+', type=int, default=[0],
                   help='seeds of the pre-training and downstream stages (one run of each per seed); the table '
                        'shows mean ± sample std over them. The default fits 25 minutes on 2 cores; '
                        '--seeds 0 1 2 takes about three times as long')
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument('--data-root', default='data/demo',
                   help='demo data (generated here) or, with --recipe full, real imagenet/ coco/ ade/')
    p.add_argument('--recipe', choices=sorted(RECIPES), default='demo',
                   help='demo: DyViT-N on embedded data; demo-long: the same with 8x the pre-training (1,984 '
                        'steps, 27-31 min a seed for CoMA, 18-20 for MAE, on one thread: beyond make demo\'s 25 minutes); '
                        'full: the DyViT-B configs on real datasets')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--gpus', type=int, default=0, help='with N > 1, training and testing run under torchrun')
    p.add_argument('--jobs', type=int, default=2, help='stages at a time (independent stages only)')
    p.add_argument('--force', action='store_true', help='rerun stages that have finished')
    p.add_argument('--quick', action='store_true',
                   help='a few iterations per training stage: checks the whole pipeline in minutes (no learning)')
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f'--seeds: repeated seed in {args.seeds}')
    args.root = ROOT
    run_demo(args)


if __name__ == '__main__':
    main()
