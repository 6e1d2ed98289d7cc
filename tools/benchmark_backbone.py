"""Backbone benchmark: DyViT against Swin, ViT-B/16 and Hiera, side by side in one run.

    python tools/benchmark_backbone.py [--batch 8] [--repeats 5] [--json out.json] [--device cpu|cuda] [--amp]
        [--compile] [--row-timeout S] [--note "what else ran"]

What each row measures: ``coma/benchmarks/backbone.py``; tables in docs/benchmarks.md.
"""
import argparse

from coma.benchmarks.backbone import MODELS_224, run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', action='store_true', help='bfloat16 autocast')
    p.add_argument('--models', nargs='+', default=MODELS_224)
    p.add_argument('--skip-detection-size', action='store_true')
    p.add_argument('--compile', action='store_true', help='add torch.compile rows after the eager ones')
    p.add_argument('--modes', nargs='+', default=['fwd', 'fwdbwd', 'masked'], help='subset of fwd fwdbwd masked')
    p.add_argument('--note', default='', help='what else ran on the machine, for the JSON')
    p.add_argument('--row-timeout', type=int, default=1800,
                   help='seconds one row (its model, compilation and timing) may take; past it the row is '
                        'reported as an error and the next one runs')
    p.add_argument('--json', help='report path, rewritten after every row')
    return run(p.parse_args(argv))


if __name__ == '__main__':
    main()
