"""Renders benchmark JSON files (from benchmark_backbone.py / benchmark_pretrain.py) as markdown tables.

    python tools/bench_report.py work_dirs/bench/backbone.json work_dirs/bench/pretrain.json
"""
import argparse
import json


def backbone_table(report):
    lines = [f"Device: {report['device']}; batch {report['batch']}; median of {report['repeats']} runs; "
             f"bf16 autocast: {report['amp']}.", '',
             '| model | input | mode | compiled | median s/iter | images/s | peak memory (MiB) | params (M) '
             '| ATen ops (kernels) | compile s |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in report['rows']:
        head = f"| {r['model']} | {r['size'][1]}x{r['size'][0]} | {r['mode']} | {'yes' if r.get('compile') else 'no'} |"
        if 'error' in r:
            lines.append(f"{head} {error_cell(r)} | | | | | |")
            continue
        ops = f"{r['ops']} ({r['kernel_ops']})" if 'ops' in r else ''
        comp = f"{r['compile_s']:.0f}" if 'compile_s' in r else ''
        lines.append(f"{head} {r['median_s']:.4f} | {r['imgs_per_s']:.1f} | {r['peak_mib']:.0f} | {r['params_m']:.1f} "
                     f"| {ops} | {comp} |")
    if report.get('machine_load'):
        load = report['machine_load']
        lines = [f"Machine load at start: {load.get('loadavg_1_5_15')} ({load.get('note') or 'nothing else noted'})."] + lines
    lines += ['', '| ratio | value |', '| --- | --- |']
    lines += [f'| {k} | {v:.3f} |' for k, v in report['summary'].items()]
    return '\n'.join(lines)


def pretrain_table(report):
    lines = [f"Device: {report['device']}; batch {report['batch']}; median of {report['repeats']} steps; "
             f"AMP: {report['amp']}.", '',
             '| setting | compiled | s/iter | vs MAE ViT-B/16 r0.75 | vs MAE ViT-B/16 r0.6 | peak memory (MiB) '
             '| vs MAE ViT-B/16 r0.75 | params (M) | ATen ops per step (kernels) |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in report['rows']:
        head = f"| {r['setting']} | {'yes' if r.get('compile') else 'no'} |"
        if 'error' in r:
            lines.append(f"{head} {error_cell(r)} | | | | | | |")
            continue
        # the ratios need MAE ViT-B/16 r0.75's row of the same kind (eager or compiled)
        s = report['summary'].get(r['setting'] + (' (compiled)' if r.get('compile') else ''), {})
        ratio = lambda key: f"{s[key]:.2f}x" if key in s else 'n/a'  # noqa: E731
        ops = f"{r['ops']} ({r['kernel_ops']})" if 'ops' in r else ''
        lines.append(f"{head} {r['median_s']:.3f} | {ratio('time_vs_mae_vit_b_0_75')} | {ratio('time_vs_mae_vit_b_0_6')} | "
                     f"{r['peak_mib']:.0f} | {ratio('memory_vs_mae_vit_b_0_75')} | {r['params_m']:.1f} | {ops} |")
    return '\n'.join(lines)


def error_cell(row):
    """The last line of a failed row's error (``TimeoutError: row ran past 120 s``, a traceback's end)."""
    last = [ln for ln in str(row['error']).strip().splitlines() if ln.strip()][-1:] or ['']
    return 'error: ' + last[0].replace('|', '/')[:120]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('reports', nargs='+', help='JSON reports of tools/benchmark_backbone.py or tools/benchmark_pretrain.py')
    for path in p.parse_args(argv).reports:
        with open(path) as f:
            report = json.load(f)
        print(f'\n<!-- {path} -->')
        print(backbone_table(report) if report['rows'] and 'model' in report['rows'][0] else pretrain_table(report))


if __name__ == '__main__':
    main()
