"""The one GPU run: smoke stage, then pre-training and backbone rows in priority order, within a budget.

    python tools/gpu_run.py --out DIR [--device cuda] [--budget-s 450] [--batch 128] [--repeats 10]
    python tools/gpu_run.py --out DIR --rehearse     # the same rows on this CPU (batch 2, one repeat, limits x3)

What it runs and how rows are limited: ``coma/benchmarks/gpu_run.py``. Writes DIR/gpu_run.json after
every row and DIR/gpu_run.md (the table) at the end; prints both. On the device it is started by
``tools/gpu_speed.sh``.
"""
import argparse
import os.path as osp

from coma.benchmarks.gpu_run import ROW_LIMIT_S, SMOKE_LIMIT_S, run, table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='folder for gpu_run.json and gpu_run.md')
    p.add_argument('--device', default='cuda')
    p.add_argument('--rehearse', action='store_true',
                   help='on this CPU: batch 2, one repeat, every limit and the budget times --limit-scale')
    p.add_argument('--limit-scale', type=float, default=None,
                   help='multiply every limit and the budget (default 1; 3 with --rehearse: a CPU is slower)')
    p.add_argument('--budget-s', type=float, default=450, help='seconds for the whole run (rows get what is left)')
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--eager-limit-s', type=float, default=ROW_LIMIT_S[False])
    p.add_argument('--compiled-limit-s', type=float, default=ROW_LIMIT_S[True])
    p.add_argument('--smoke-limit-s', type=float, default=SMOKE_LIMIT_S)
    args = p.parse_args(argv)
    scale = args.limit_scale or (3.0 if args.rehearse else 1.0)
    if args.rehearse:
        args.device, args.batch, args.repeats = 'cpu', 2, 1
    report = run(args.device, args.batch, args.repeats, args.budget_s * scale, osp.join(args.out, 'gpu_run.json'),
                 limits={False: args.eager_limit_s * scale, True: args.compiled_limit_s * scale,
                         'smoke': args.smoke_limit_s * scale})
    text = table(report)
    with open(osp.join(args.out, 'gpu_run.md'), 'w') as f:
        f.write(text + '\n')
    print(text)
    return report


if __name__ == '__main__':
    main()
