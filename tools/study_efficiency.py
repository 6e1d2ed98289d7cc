"""The real-data pre-training efficiency study: CoMA against MAE on DyViT-N.

    python tools/study_efficiency.py [--epochs 16] [--seeds 0 1 2] [--jobs 2] [--work-dir work_dirs/study]
        [--results docs/results.md]
    python tools/study_efficiency.py --smoke            # 1 epoch, 1 seed: the check CI runs

The protocol (pre-training budgets, linear probe, short fine-tune, caching): ``coma/analysis/study.py``.
"""
import argparse
import os.path as osp
from typing import Dict, List

from mmengine.config import DictAction

from coma.analysis.study import FT_RECIPES, run

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))


def main(argv=None) -> List[Dict]:
    p = argparse.ArgumentParser(description='CoMA vs MAE pre-training efficiency on real photos (DyViT-N)')
    p.add_argument('--epochs', type=int, default=16, help='E: the largest pre-training budget')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--ft-epochs', type=int, help='epochs of the short fine-tune (default 4; 0: none)')
    p.add_argument('--ft-recipe', choices=sorted(FT_RECIPES), default='light',
                   help='short fine-tune recipe (see FT_RECIPES)')
    p.add_argument('--jobs', type=int, default=2, help='jobs at a time (one thread each)')
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'study'))
    p.add_argument('--data-root', help='an ImageNet-style folder; default: generated demo photos')
    p.add_argument('--results', help='write the table here (markdown)')
    p.add_argument('--plot', help='write the accuracy-vs-epochs plot here (PNG)')
    p.add_argument('--smoke', action='store_true', help='1 epoch, 1 seed, 1 fine-tune epoch (CI check)')
    p.add_argument('--budgets', type=int, nargs='+', help='pre-training budgets instead of E/8, E/4, E/2, E')
    p.add_argument('--methods', nargs='+', choices=['coma', 'mae', 'random'], default=['coma', 'mae', 'random'])
    p.add_argument('--pretrain-options', nargs='+', action=DictAction, default={},
                   help='config overrides of the pre-training runs (ablations), e.g. model.head.norm_pix=False; '
                        'use a separate --work-dir')
    p.add_argument('--ft-options', nargs='+', action=DictAction, default={},
                   help='config overrides of the fine-tune runs, e.g. optim_wrapper.optimizer.lr=6.25e-5; '
                        'use a separate --work-dir')
    args = p.parse_args(argv)
    args.root = ROOT
    return run(args)


if __name__ == '__main__':
    main()
