"""The paper's Figure 2: per-unit masking frequency over N iterations, random vs complementary.

    python tools/visualize_masks.py [--iters 1600] [--ratio 0.6] [--grid 7 7] [--out work_dirs/masks.png]

Random (MAE) masks are drawn independently each iteration; for complementary (CoMA) masks both
branches are counted, so every unit is hidden exactly once per iteration.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

import torch  # noqa: E402


def frequencies(iters: int, ratio: float, grid, seed: int = 0):
    from coma.masking import complementary_masks, random_masks
    g = torch.Generator().manual_seed(seed)
    rand = torch.zeros(grid)
    comp = torch.zeros(grid)
    for _ in range(iters):
        rand += random_masks(1, grid, ratio, generator=g)[0].float()
        m, c = complementary_masks(1, grid, ratio, generator=g)
        comp += (m.float() + c.float())[0]
    return rand, comp


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--iters', type=int, default=1600)
    p.add_argument('--ratio', type=float, default=0.6)
    p.add_argument('--grid', type=int, nargs=2, default=(7, 7))
    p.add_argument('--out', default='work_dirs/mask_frequency.png')
    args = p.parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rand, comp = frequencies(args.iters, args.ratio, tuple(args.grid))
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, counts, title in ((axes[0], rand, 'Random masking (MAE)'),
                              (axes[1], comp, 'Complementary masking (CoMA, both branches)')):
        freq = counts / args.iters
        im = ax.imshow(freq, cmap='Reds', vmin=0, vmax=1)
        ax.set_title(f'{title}\nmin {freq.min():.3f}  max {freq.max():.3f}  std {freq.std():.3f}', fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f'Masking frequency per 32-px unit over {args.iters} iterations, ratio {args.ratio}')
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110, bbox_inches='tight')
    print(f'random: per-unit masking frequency {float(rand.min()) / args.iters:.3f}-{float(rand.max()) / args.iters:.3f}; '
          f'complementary: every unit {float(comp.min()) / args.iters:.3f}-{float(comp.max()) / args.iters:.3f}; '
          f'saved {args.out}')
    return rand, comp


if __name__ == '__main__':
    main()
