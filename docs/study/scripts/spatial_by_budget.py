"""Spatial variation of the four output maps of the study's checkpoints,
by method and pre-training budget (does the late-stage collapse grow with pre-training?).

Usage: python docs/study/scripts/spatial_by_budget.py WORK_DIR [OUT_JSON]
WORK_DIR holds the study's <method>_s<seed>_e<epochs>/pretrain.json (e.g. work_dirs/study).
Images: 16 scikit-image photos at 224x224, as tools/analyze_checkpoint.py --size 224 --images 16.
"""
import json
import os
import sys

import torch

from coma.diagnosis import downstream_dyvit, load_image_batch, spatial_variation


def main(work: str, out: str = None) -> None:
    torch.manual_seed(0)
    images = load_image_batch(None, 16, 224)
    rows = []
    for name in sorted(os.listdir(work)):
        path = os.path.join(work, name, 'pretrain.json')
        if not os.path.isfile(path):
            continue
        method, seed, epochs = name.split('_')
        with open(path) as f:
            ckpt = json.load(f)['value']
        net = downstream_dyvit(ckpt, 'nano', int(seed[1:]))  # ckpt None: the random init of that seed
        row = dict(method=method, seed=int(seed[1:]), epochs=int(epochs[1:]), checkpoint=ckpt,
                   spatial_variation=spatial_variation(net, images))
        rows.append(row)
        print(method, seed, epochs, ' / '.join(f'{v:.2f}' for v in row['spatial_variation']), flush=True)
    if out:
        with open(out, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    torch.set_num_threads(2)
    main(*sys.argv[1:])
