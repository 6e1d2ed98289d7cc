"""Original, M_t's view and reconstruction, M_{t-1}'s view and reconstruction, as one PNG.

    python tools/visualize_reconstruction.py CHECKPOINT IMAGE [--config CFG] [--size 224] [--out recon.png]

The config is read from the checkpoint (mmengine stores it) unless ``--config`` is given. With
``norm_pix`` the predictions are per-unit normalised; they are mapped back with each unit's own
mean and standard deviation, as MAE's visualisation does.
"""
import argparse

from coma.analysis.pictures import load_pretrain_model, render_reconstruction


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoint')
    p.add_argument('image')
    p.add_argument('--config')
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='work_dirs/reconstruction.png')
    args = p.parse_args(argv)
    out = render_reconstruction(load_pretrain_model(args.checkpoint, args.config), args.image, args.size, args.out,
                                args.seed)
    print(f'saved {out}')
    return out


if __name__ == '__main__':
    main()
