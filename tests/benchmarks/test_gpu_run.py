"""The one GPU run (tools/gpu_run.py): rows limited and labelled, the report kept after every row."""
import json

import pytest
import torch

from coma.benchmarks import gpu_run
from coma.benchmarks.common import run_worker


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _fake_runner(clock, seconds, results):
    """Each row takes ``seconds[i]`` of the fake clock and returns ``results[i]`` merged into its spec."""
    calls = iter(zip(seconds, results))

    def runner(module, spec, timeout):
        took, result = next(calls)
        clock.now += min(took, timeout)
        if took > timeout:
            return dict(spec, status='timeout', error='killed')
        return dict(spec, status='ok', **result)
    return runner


def test_rows_past_the_budget_are_skipped_and_the_report_is_kept_after_each_row(tmp_path):
    rows = gpu_run.plan('cuda', 8, 1)[:4]  # smoke, then the three eager pre-training rows
    clock = FakeClock()
    results = [dict(smoke='OK'), dict(median_s=1.0), dict(median_s=0.5), dict(median_s=0.4)]
    path = str(tmp_path / 'gpu_run.json')
    seen = []

    def runner(module, spec, timeout):
        if seen:  # the report on disk holds every row finished before this one
            assert len(json.load(open(path))['rows']) == len(seen)
        seen.append(spec)
        return inner(module, spec, timeout)
    inner = _fake_runner(clock, [30, 40, 200, 10], results)
    report = gpu_run.run('cuda', 8, 1, budget_s=100, json_path=path, rows=rows, runner=runner, clock=clock,
                         limits={False: 60, True: 150, 'smoke': 150})
    status = [r['status'] for r in report['rows']]
    # 30 + 40 s leave 30 s: the third row is killed at what is left, the fourth gets nothing
    assert status == ['ok', 'ok', 'timeout', 'skipped']
    assert report['rows'][2]['limit_s'] == 30
    assert json.load(open(path))['rows'][-1]['status'] == 'skipped'
    assert report['summary']['CoMA DyViT-B step / MAE ViT-B/16 r0.75 step, eager']['value'] == 'not measured'


def test_targets_are_set_beside_their_figures_and_a_fallback_is_no_compiled_figure():
    rows = [dict(stage='backbone', status='ok', compile=True, model='dyvit_base', mode='fwd', imgs_per_s=700.0,
                 median_s=1.0, ran_compiled=True),
            dict(stage='backbone', status='ok', compile=True, model='vit_base_patch16_224', mode='fwd',
                 imgs_per_s=1000.0, median_s=1.0, ran_compiled=True),
            dict(stage='backbone', status='ok', compile=True, model='dyvit_base', mode='masked', median_s=0.6,
                 imgs_per_s=1.0, ran_compiled=True),
            dict(stage='pretrain', status='ok', compile=True, setting='coma_dyvit-b_r0.6', median_s=2.0,
                 ran_compiled=False, fallback={'DyViT.forward_masked': 'BackendCompilerFailed: ...'}),
            dict(stage='pretrain', status='ok', compile=True, setting='mae_vit-b-p16_r0.75', median_s=1.0,
                 ran_compiled=True)]
    summary = gpu_run.summarise(rows)
    assert summary['DyViT-B dense / ViT-B/16 images/s, compiled'] == dict(target='>= 0.7', value=0.7, met='yes')
    assert summary['DyViT-B masked (40% visible) / dense time, compiled']['met'] == 'no'
    # the CoMA row ran eagerly: it is no compiled figure
    assert summary['CoMA DyViT-B step / MAE ViT-B/16 r0.75 step, compiled']['value'] == 'not measured'
    report = dict(device='x', torch='t', batch=1, repeats=1, budget_s=1, elapsed_s=1, stage_s={}, rows=rows,
                  summary=dict(summary, smoke='OK'))
    assert '| pretrain | coma_dyvit-b_r0.6 | fell back to eager | ok |' in gpu_run.table(report)


@pytest.mark.slow
def test_a_compilation_past_the_row_limit_is_killed_and_labelled_timeout():
    """A real row whose compilation (CoMA DyViT-B on this CPU: minutes) outlasts its limit is killed
    at the limit, not left to run on eagerly under the compiled label."""
    spec = dict(stage='pretrain', setting='coma_dyvit-b_r0.6', device='cpu', batch=2, repeats=1, amp=True,
                compile=True)
    row = run_worker('coma.benchmarks.pretrain', spec, timeout=40)
    assert row['status'] == 'timeout' and 'median_s' not in row, row
    assert 35 <= row['wall_s'] < 60
    report = dict(device='x', torch='t', batch=2, repeats=1, budget_s=40, elapsed_s=40, stage_s={}, rows=[row],
                  summary=gpu_run.summarise([row]) | dict(smoke='not run'))
    assert '| pretrain | coma_dyvit-b_r0.6 | yes | timeout |' in gpu_run.table(report)


def test_a_time_limit_during_compilation_is_raised_not_taken_for_a_compiler_failure():
    from coma.models import CoMA
    from coma.models.utils.compile import compile_fallbacks

    def build(backend):
        return CoMA(backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
                    decoder=dict(type='CoMADecoder', embed_dim=32, depth=1, num_heads=2),
                    compile=dict(backend=backend)).train()

    def alarm(gm, example_inputs):
        raise TimeoutError('row ran past its limit')
    with pytest.raises(Exception) as info:
        build(alarm).loss(torch.randn(2, 3, 64, 64))
    assert 'TimeoutError' in repr(info.value) or isinstance(info.value.__cause__, TimeoutError)

    def broken(gm, example_inputs):
        raise RuntimeError('no compiler here')
    model = build(broken)
    model.loss(torch.randn(2, 3, 64, 64))
    assert set(compile_fallbacks(model)) >= {'DyViT.forward_masked', 'CoMADecoder.forward'}
    assert 'no compiler here' in next(iter(compile_fallbacks(model).values()))
