"""How many directions do a backbone's pooled features use? (the diagnosis in docs/results.md)

    python tools/feature_spectrum.py DATA_ROOT [CKPT ...] [--split val] [--images 50]

For each converted backbone checkpoint (``random`` for a random initialisation), the pooled
last-stage DyViT-N features of ``--images`` images of ``DATA_ROOT/<split>`` (centre crops, as the
linear probe sees them) are centred over the images; printed are the share of their variance on
the first principal component and the effective rank (exp of the entropy of the normalised
spectrum). A representation that the linear probe can use has several directions.
"""
import argparse
import os.path as osp

from coma.analysis.features import pooled_features, probe_dataset, probe_model, spectrum

LINPROBE_CFG = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'imagenet_configs',
                        'linprobe_dyvit-n_1xb32-coslr-20e_demo.py')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('data_root')
    p.add_argument('checkpoints', nargs='*', default=['random'])
    p.add_argument('--split', default='val')
    p.add_argument('--images', type=int, default=50)
    args = p.parse_args(argv)
    rows = []
    print('| backbone | variance on the 1st component | effective rank |\n| --- | --- | --- |')
    for ckpt in args.checkpoints:
        model, cfg = probe_model(LINPROBE_CFG, ckpt)
        ds = probe_dataset(cfg, args.data_root, args.split)
        feats, _ = pooled_features(model, ds, range(0, len(ds), max(1, len(ds) // args.images))[:args.images])
        pc1, rank = spectrum(feats)
        rows.append((ckpt, pc1, rank))
        print(f'| {ckpt} | {pc1:.3f} | {rank:.1f} |', flush=True)
    return rows


if __name__ == '__main__':
    main()
