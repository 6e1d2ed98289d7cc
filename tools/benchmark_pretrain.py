"""Pre-training benchmark: seconds per iteration and peak memory, side by side in one run.

    python tools/benchmark_pretrain.py [--batch 8] [--repeats 5] [--device cpu|cuda] [--amp] [--json out.json]
        [--compile] [--row-timeout S] [--note "what else ran"]

What each row measures: ``coma/benchmarks/pretrain.py``; tables in docs/benchmarks.md.
"""
import argparse

from coma.benchmarks.pretrain import SETTINGS, run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', action='store_true')
    p.add_argument('--settings', nargs='+', default=list(SETTINGS))
    p.add_argument('--compile', action='store_true', help='add compiled rows after the eager ones')
    p.add_argument('--note', default='', help='what else ran on the machine, for the JSON')
    p.add_argument('--row-timeout', type=int, default=1800,
                   help='seconds one row (its model, compilation and timing) may take; past it the row is '
                        'reported as an error and the next one runs')
    p.add_argument('--json', help='report path, rewritten after every row')
    return run(p.parse_args(argv))


if __name__ == '__main__':
    main()
