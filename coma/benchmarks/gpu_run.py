"""One GPU run that fits a short lease (``tools/gpu_run.py``; ``tools/gpu_speed.sh`` on the device).

Stages, in priority order, each row in its own process under a hard time limit that covers its
compilation (the process is killed), all under one overall budget:

1. the smoke stage (:mod:`coma.benchmarks.smoke`): one CoMA DyViT-B and one MAE ViT-B/16 training
   step, eager bf16, math SDPA backend off; DM-MSA on CUDA against the CPU;
2. pre-training steps: CoMA on DyViT-B (0.6) against MAE on ViT-B/16 at 0.75 and 0.6, eager, then
   compiled;
3. backbones at 224: DyViT-B dense and masked (20 of 49 units visible) against ViT-B/16 and Hiera-B
   (dense; Hiera-B masked too), eager, then compiled.

A row that cannot get :data:`MIN_ROW_S` seconds of the budget is reported as ``skipped``; one killed
at its limit as ``timeout``; a compiled row that fell back to eager has ``ran_compiled: false``. The
JSON report is rewritten after every row, so a run stopped from outside keeps what it finished. The
summary sets the targets beside their figures ("not measured" where a row is missing).
"""
import json
import time
from typing import Callable, Dict, List, Optional

from coma.benchmarks.common import device_name, machine_load, run_worker, write_report

#: seconds a row needs at least to be started
MIN_ROW_S = 20
#: per-row limits in seconds (eager, compiled); the smoke stage has its own
ROW_LIMIT_S = {False: 60, True: 150}
SMOKE_LIMIT_S = 150
PRETRAIN = ('coma_dyvit-b_r0.6', 'mae_vit-b-p16_r0.75', 'mae_vit-b-p16_r0.6')
BACKBONE = (('dyvit_base', 'fwd'), ('dyvit_base', 'masked'), ('vit_base_patch16_224', 'fwd'),
            ('hiera_base_224', 'fwd'), ('hiera_base_224', 'masked'))
#: (name, target text, how to compute it from the rows, the bound and whether the value must stay below it)
TARGETS = (
    ('DyViT-B dense / ViT-B/16 images/s, compiled', '>= 0.7',
     lambda g: _ratio(g('backbone', 'dyvit_base', 'fwd', True), g('backbone', 'vit_base_patch16_224', 'fwd', True),
                      'imgs_per_s'), 0.7, False),
    ('DyViT-B masked (40% visible) / dense time, compiled', '<= 0.5',
     lambda g: _ratio(g('backbone', 'dyvit_base', 'masked', True), g('backbone', 'dyvit_base', 'fwd', True),
                      'median_s'), 0.5, True),
    ('CoMA DyViT-B step / MAE ViT-B/16 r0.75 step, compiled', '<= 1.5',
     lambda g: _ratio(g('pretrain', 'coma_dyvit-b_r0.6', None, True), g('pretrain', 'mae_vit-b-p16_r0.75', None, True),
                      'median_s'), 1.5, True),
    ('CoMA DyViT-B step / MAE ViT-B/16 r0.6 step, compiled', '(reported)',
     lambda g: _ratio(g('pretrain', 'coma_dyvit-b_r0.6', None, True), g('pretrain', 'mae_vit-b-p16_r0.6', None, True),
                      'median_s'), None, True),
    ('CoMA DyViT-B step / MAE ViT-B/16 r0.75 step, eager', '(reported)',
     lambda g: _ratio(g('pretrain', 'coma_dyvit-b_r0.6', None, False), g('pretrain', 'mae_vit-b-p16_r0.75', None, False),
                      'median_s'), None, True),
)


def _ratio(a: Optional[Dict], b: Optional[Dict], key: str) -> Optional[float]:
    return a[key] / b[key] if a and b else None


def plan(device: str, batch: int, repeats: int) -> List[Dict]:
    """Every row of the run, in priority order (each a spec for its stage's worker)."""
    common = dict(device=device, batch=batch, repeats=repeats, amp=True)
    rows = [dict(stage='smoke', module='coma.benchmarks.smoke', device=device, batch=min(batch, 32))]
    for compiled in (False, True):
        rows += [dict(common, stage='pretrain', module='coma.benchmarks.pretrain', setting=s, compile=compiled)
                 for s in PRETRAIN]
    for compiled in (False, True):
        rows += [dict(common, stage='backbone', module='coma.benchmarks.backbone', model=m, mode=mode,
                      size=(224, 224), compile=compiled) for m, mode in BACKBONE]
    return rows


def summarise(rows: List[Dict]) -> Dict:
    """Each target beside its figure, or "not measured"."""
    def get(stage, name, mode, compiled):
        for r in rows:
            if (r.get('stage') == stage and r.get('status') == 'ok' and bool(r.get('compile')) == compiled
                    and r.get('setting', r.get('model')) == name and (mode is None or r.get('mode') == mode)
                    and r.get('ran_compiled', True)):
                return r
        return None

    out = {}
    for name, target, compute, bound, below in TARGETS:
        value = compute(get)
        met = None if value is None or bound is None else (value <= bound if below else value >= bound)
        out[name] = dict(target=target, value=value if value is not None else 'not measured',
                         met={None: 'n/a', True: 'yes', False: 'no'}[met])
    smoke = next((r for r in rows if r.get('stage') == 'smoke'), None)
    out['smoke'] = smoke.get('smoke', smoke.get('status')) if smoke else 'not run'
    return out


def run(device: str, batch: int, repeats: int, budget_s: float, json_path: str,
        limits: Optional[Dict] = None, rows: Optional[List[Dict]] = None,
        runner: Callable = run_worker, clock: Callable[[], float] = time.perf_counter) -> Dict:
    """Runs :func:`plan`'s rows (or ``rows``) within ``budget_s`` seconds; returns the report.

    Args:
        device: ``'cuda'`` or ``'cpu'`` (a rehearsal).
        batch: images per step or forward.
        repeats: timed repeats per row (median).
        budget_s: the whole run's seconds; each row gets at most what is left of it.
        json_path: the report, rewritten after every row.
        limits: per-row limits, ``{False: eager_s, True: compiled_s, 'smoke': s}``.
        rows: the specs to run (default :func:`plan`'s).
        runner: runs one row: ``runner(module, spec, timeout)`` (tests pass their own).
        clock: seconds since some origin (tests pass their own).

    Returns:
        The report: device, rows, summary, seconds per stage.
    """
    limits = {False: ROW_LIMIT_S[False], True: ROW_LIMIT_S[True], 'smoke': SMOKE_LIMIT_S, **(limits or {})}
    rows = plan(device, batch, repeats) if rows is None else rows
    start = clock()
    done: List[Dict] = []
    stage_s: Dict[str, float] = {}
    report: Dict = {}
    for spec in rows:
        left = budget_s - (clock() - start)
        limit = min(limits['smoke'] if spec['stage'] == 'smoke' else limits[bool(spec.get('compile'))], left)
        if limit < MIN_ROW_S:
            row = dict(spec, status='skipped', error=f'{left:.0f} s of the {budget_s:.0f} s budget left', wall_s=0.0)
        else:
            t0 = clock()
            row = runner(spec['module'], spec, timeout=limit)
            row.setdefault('wall_s', clock() - t0)
            row['limit_s'] = limit
        done.append(row)
        stage = spec['stage'] + (' compiled' if spec.get('compile') else '')
        stage_s[stage] = stage_s.get(stage, 0.0) + row['wall_s']
        print(json.dumps({k: v for k, v in row.items() if k not in ('times_s', 'where')})[:600], flush=True)
        report = dict(device=device_name() if device == 'cuda' else f'{device_name()} (rehearsal)', batch=batch,
                      repeats=repeats, budget_s=budget_s, elapsed_s=clock() - start, stage_s=stage_s, rows=done,
                      summary=summarise(done), machine_load=machine_load(), torch=_torch_version())
        write_report(report, json_path)
    return report


def _torch_version() -> str:
    import torch
    return torch.__version__


def table(report: Dict) -> str:
    """The report as markdown: one line per row, then the targets."""
    lines = [f"Device: {report['device']}; torch {report['torch']}; batch {report['batch']}, median of "
             f"{report['repeats']}; bf16 autocast; budget {report['budget_s']:.0f} s, used {report['elapsed_s']:.0f} s.",
             '', '| stage | row | compiled | status | median s | images/s | peak MiB | compile s | wall s |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for r in report['rows']:
        name = r.get('setting') or (f"{r['model']} {r['mode']}" if 'model' in r else r['stage'])
        compiled = '' if not r.get('compile') else ('fell back to eager' if r.get('ran_compiled') is False else 'yes')
        status = r.get('smoke', r['status']) if r['stage'] == 'smoke' and r['status'] == 'ok' else r['status']
        def cell(key, fmt):
            return format(r[key], fmt) if isinstance(r.get(key), (int, float)) else ''
        lines.append(f"| {r['stage']} | {name} | {compiled} | {status} | {cell('median_s', '.4f')} | "
                     f"{cell('imgs_per_s', '.1f')} | {cell('peak_mib', '.0f')} | {cell('compile_s', '.0f')} | "
                     f"{cell('wall_s', '.0f')} |")
    lines += ['', '| target | bound | figure | met |', '| --- | --- | --- | --- |']
    for name, t in report['summary'].items():
        if isinstance(t, dict):
            value = t['value'] if isinstance(t['value'], str) else f"{t['value']:.3f}"
            lines.append(f"| {name} | {t['target']} | {value} | {t['met']} |")
    lines += ['', f"Smoke stage: {report['summary']['smoke']}; seconds per stage: "
              + ', '.join(f'{k} {v:.0f}' for k, v in report['stage_s'].items())]
    return '\n'.join(lines)
