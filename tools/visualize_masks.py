"""The paper's Figure 2: per-unit masking frequency over N iterations, random vs complementary.

    python tools/visualize_masks.py [--iters 1600] [--ratio 0.6] [--grid 7 7] [--out work_dirs/masks.png]

Random (MAE) masks are drawn independently each iteration; for complementary (CoMA) masks both
branches are counted, so every unit is hidden exactly once per iteration.
"""
import argparse

from coma.analysis.pictures import plot_mask_frequencies


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=1600)
    p.add_argument('--ratio', type=float, default=0.6)
    p.add_argument('--grid', type=int, nargs=2, default=(7, 7))
    p.add_argument('--out', default='work_dirs/mask_frequency.png')
    args = p.parse_args(argv)
    return plot_mask_frequencies(args.iters, args.ratio, args.grid, args.out)


if __name__ == '__main__':
    main()
