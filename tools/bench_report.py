"""Renders benchmark JSON files (from benchmark_backbone.py / benchmark_pretrain.py) as markdown tables.

    python tools/bench_report.py work_dirs/bench/backbone.json work_dirs/bench/pretrain.json
"""
import json
import sys


def backbone_table(report):
    lines = [f"Device: {report['device']}; batch {report['batch']}; median of {report['repeats']} runs; "
             f"bf16 autocast: {report['amp']}.", '',
             '| model | input | mode | median s/iter | images/s | peak memory (MiB) | params (M) |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for r in report['rows']:
        if 'error' in r:
            lines.append(f"| {r['model']} | {r['size'][1]}x{r['size'][0]} | {r['mode']} | error | | | |")
            continue
        lines.append(f"| {r['model']} | {r['size'][1]}x{r['size'][0]} | {r['mode']} | {r['median_s']:.4f} | "
                     f"{r['imgs_per_s']:.1f} | {r['peak_mib']:.0f} | {r['params_m']:.1f} |")
    lines += ['', '| ratio | value |', '| --- | --- |']
    lines += [f'| {k} | {v:.3f} |' for k, v in report['summary'].items()]
    return '\n'.join(lines)


def pretrain_table(report):
    lines = [f"Device: {report['device']}; batch {report['batch']}; median of {report['repeats']} steps; "
             f"AMP: {report['amp']}.", '',
             '| setting | s/iter | vs MAE ViT-B/16 r0.75 | peak memory (MiB) | vs MAE ViT-B/16 r0.75 | params (M) |',
             '| --- | --- | --- | --- | --- | --- |']
    for r in report['rows']:
        s = report['summary'].get(r['setting'])
        if s is None:
            lines.append(f"| {r['setting']} | error | | | | |")
            continue
        lines.append(f"| {r['setting']} | {s['s_per_iter']:.3f} | {s['time_vs_mae_vit_b_0_75']:.2f}x | "
                     f"{s['peak_mib']:.0f} | {s['memory_vs_mae_vit_b_0_75']:.2f}x | {r['params_m']:.1f} |")
    return '\n'.join(lines)


def main(paths):
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        print(f'\n<!-- {path} -->')
        print(backbone_table(report) if report['rows'] and 'model' in report['rows'][0] else pretrain_table(report))


if __name__ == '__main__':
    main(sys.argv[1:])
