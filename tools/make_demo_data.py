"""Generates the small, deterministic, real-photo demo datasets (no download).

    python tools/make_demo_data.py --imagenet data/demo/imagenet   # class folders of photo crops
    python tools/make_demo_data.py --coco data/demo/coco           # COCO-format instances
    python tools/make_demo_data.py --ade data/demo/ade             # ADE20K-format semantic maps
    python tools/make_demo_data.py --pool data/demo/pool           # unlabelled pre-training pool

What each set holds: ``coma/datasets/demo.py``.
"""
import argparse
from typing import Dict

from coma.datasets.demo import POOL_SIZE, make_ade, make_coco, make_imagenet, make_pool


def main(argv=None) -> Dict[str, str]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--imagenet')
    p.add_argument('--coco')
    p.add_argument('--ade')
    p.add_argument('--pool', help='folder for the unlabelled pre-training pool')
    p.add_argument('--pool-size', type=int, default=POOL_SIZE)
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if not (args.imagenet or args.coco or args.ade or args.pool):
        p.error('give at least one of --imagenet, --coco, --ade, --pool')
    if args.imagenet:
        make_imagenet(args.imagenet, seed=args.seed)
    if args.coco:
        make_coco(args.coco, seed=args.seed)
    if args.ade:
        make_ade(args.ade, seed=args.seed)
    if args.pool:
        make_pool(args.pool, args.pool_size, seed=args.seed)
    return vars(args)


if __name__ == '__main__':
    main()
