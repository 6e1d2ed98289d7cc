"""Diagnoses a CoMA/MAE pre-training checkpoint (or a converted DyViT backbone) against a fresh init.

    python tools/analyze_checkpoint.py CKPT [IMAGE_DIR] [--arch nano] [--seed 0] [--size 224]
        [--images 32] [--out work_dirs/diagnosis] [--coco data/demo/coco]

Prints a per-block table (weight RMS / init, attention-logit scale and entropy per head group, gate
weights, relative-position rows moved from their init) and the feature statistics (effective rank
of standardised pooled features, pairwise cosine of unit latents, spatial variation of the four
output maps; with ``--coco DIR`` a frozen dense probe at the detector's resolution); writes ``diagnosis.json`` and
``diagnosis.png`` to ``--out``. Without IMAGE_DIR it uses scikit-image's bundled photos. The logic
is :mod:`coma.diagnosis`.
"""
import argparse
import json
import os

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoint')
    p.add_argument('images', nargs='?', help='a folder of images (default: scikit-image photos)')
    p.add_argument('--arch', help='DyViT arch when the checkpoint carries no config')
    p.add_argument('--seed', type=int, default=0, help='seed of the fresh init to compare with')
    p.add_argument('--size', type=int, default=224, help='image side (a multiple of 32)')
    p.add_argument('--images', dest='count', type=int, default=32)
    p.add_argument('--out', default='work_dirs/diagnosis')
    p.add_argument('--coco', help='a COCO-format folder (train and val): adds the frozen dense probe of the '
                                  'four output maps at the detector\'s resolution, against the random init')
    args = p.parse_args(argv)

    from coma.diagnosis import (dense_probe, diagnose, downstream_dyvit, load_coco_label_maps, load_image_batch,
                                load_trained_dyvit, plot_diagnosis, spatial_variation)
    model, fresh = load_trained_dyvit(args.checkpoint, args.arch, args.seed)
    images = load_image_batch(args.images, args.count, args.size)
    blocks, summary = diagnose(model, fresh, images)
    trained, random = downstream_dyvit(args.checkpoint, model.arch, args.seed), downstream_dyvit(None, model.arch, args.seed)
    summary['spatial_variation'] = spatial_variation(trained, images)
    summary['fresh_spatial_variation'] = spatial_variation(random, images)
    if args.coco:
        train, val = load_coco_label_maps(args.coco, 'train'), load_coco_label_maps(args.coco, 'val')
        for name, net in (('dense_probe', trained), ('fresh_dense_probe', random)):
            summary[name] = dense_probe(net, train[:2], val[:2], len(train[2]))
    cols = ['stage', 'block', 'weight_rms_ratio', 'logit_std_fine', 'entropy_fine', 'logit_std_coarse',
            'entropy_coarse', 'gate_fine', 'gate_coarse', 'fine_rows_moved', 'coarse_rows_moved']
    print('| ' + ' | '.join(cols) + ' |\n|' + ' --- |' * len(cols))
    for row in blocks:
        print('| ' + ' | '.join(f'{row[c]:.3f}' if isinstance(row.get(c), float) else str(row.get(c, '-'))
                                for c in cols) + ' |')
    for key, value in summary.items():
        if isinstance(value, list):
            value = '[' + ', '.join(f'{v:.3f}' for v in value) + ']'
        elif isinstance(value, dict):
            value = ', '.join(f'{k} {v:.1f}' for k, v in value.items())
        print(f'{key}: {value:.4g}' if isinstance(value, float) else f'{key}: {value}')
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'diagnosis.json'), 'w') as f:
        json.dump(dict(checkpoint=os.path.abspath(args.checkpoint), blocks=blocks, summary=summary), f, indent=1)
    plot_diagnosis(blocks, summary, os.path.join(args.out, 'diagnosis.png'))
    print(f'wrote {args.out}/diagnosis.json and diagnosis.png')
    return blocks, summary


if __name__ == '__main__':
    torch.set_num_threads(min(2, torch.get_num_threads()))
    main()
