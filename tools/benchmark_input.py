"""Input-pipeline benchmark: images/s per data worker on ImageNet-sized JPEGs, ours beside timm's.

    python tools/benchmark_input.py [--folder work_dirs/bench/jpegs] [--rounds 3] [--batch 32] [--json out.json]

What it measures: ``coma/benchmarks/input_pipeline.py``; the table is in docs/benchmarks.md.
"""
import argparse

from coma.benchmarks.input_pipeline import run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--folder', default='work_dirs/bench/jpegs', help='made (400 JPEGs) when empty')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--per-class', type=int, default=40)
    p.add_argument('--json', default='')
    args = p.parse_args(argv)
    return run(args.folder, args.rounds, args.batch, args.per_class, args.json)


if __name__ == '__main__':
    main()
