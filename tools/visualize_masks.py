"""The paper's Figure 2: how often each unit is hidden over N steps, as the models draw their masks.

    python tools/visualize_masks.py [--iters 1600] [--ratio 0.6] [--grid 7 7] [--out work_dirs/mask_frequency.png]

Four maps of one image's units (one step an epoch): MAE's mask; CoMA's two branches counted together
(uniform by construction: every unit is hidden from exactly one branch at every step); the adaptive
model M_t's own mask in CoMA (drawn afresh every step, so binomial like MAE's) and in its variant
``CoMAAlternate`` (pairs of epochs). M_t's own map is what its gradient sees.
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
