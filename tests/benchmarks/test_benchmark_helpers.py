"""coma.benchmarks: a worker row in its own process, and the summaries (no timing is asserted)."""
import argparse
import json

import pytest

from coma.benchmarks import backbone, common, pretrain  # noqa: F401  (they import without side effects)
from coma.benchmarks.common import run_rows, run_worker, time_median, write_report


@pytest.mark.parametrize('mode,size', [('fwd', (64, 64)), ('masked', (224, 224))])
def test_worker_runs_in_its_own_process(tmp_path, mode, size):
    spec = dict(model='dyvit_nano', mode=mode, size=size, batch=1, repeats=1, device='cpu', amp=False)
    row = run_worker(backbone.MODULE, spec)
    assert 'error' not in row, row.get('error')
    if mode == 'masked':  # the sparse forward over 20 of 49 units, counted at batch 2
        assert row['ops'] > 0 and row['kernel_ops'] > 0
    assert row['model'] == 'dyvit_nano' and row['median_s'] > 0 and row['params_m'] > 0
    write_report(dict(rows=[row]), str(tmp_path / 'out' / 'r.json'))
    assert (tmp_path / 'out' / 'r.json').exists()


def test_summary_ratios_and_medians():
    rows = [dict(model='dyvit_tiny', mode='fwd', size=(224, 224), median_s=2.0, imgs_per_s=4.0),
            dict(model='dyvit_tiny', mode='masked', size=(224, 224), median_s=1.0, imgs_per_s=8.0),
            dict(model='swin_tiny_patch4_window7_224', mode='fwd', size=(224, 224), median_s=1.0, imgs_per_s=8.0)]
    summary = backbone.summarise(rows)
    assert summary['dyvit_tiny masked/dense time'] == 0.5
    assert summary['dyvit_tiny/swin_tiny_patch4_window7_224 fwd imgs_per_s'] == 0.5
    steps = [dict(setting='coma_dyvit-b_r0.6', median_s=0.3, peak_mib=100.0),
             dict(setting='mae_vit-b-p16_r0.6', median_s=0.2, peak_mib=50.0),
             dict(setting='mae_vit-b-p16_r0.75', compile=True, error='TimeoutError: row ran past 1 s')]
    summary = pretrain.summarise(steps)  # the r0.75 reference failed: the r0.6 ratio stays
    assert summary['coma_dyvit-b_r0.6'] == pytest.approx(dict(s_per_iter=0.3, peak_mib=100.0, time_vs_mae_vit_b_0_6=1.5))
    assert not any('compiled' in key for key in summary)
    calls = []
    assert len(time_median(lambda: calls.append(1), repeats=3, warmup=1)['times_s']) == 3 and len(calls) == 4


def test_a_row_past_its_time_limit_is_an_error_and_the_next_rows_run(tmp_path, monkeypatch):
    # a worker process past its limit is killed (the interpreter and timm's import alone take more than 1 s)
    spec = dict(model='dyvit_nano', mode='fwd', size=(64, 64), batch=1, repeats=1, device='cpu', amp=False)
    row = run_worker(backbone.MODULE, spec, timeout=1)
    assert row['status'] == 'timeout' and row['error'].startswith('TimeoutError')

    # eager rows first, the report after every row, a failed row does not stop the next ones
    def fake_worker(module, spec, timeout, worker=None):
        if spec['slow']:
            return dict(spec, status='timeout', error=f'TimeoutError: row ran past {timeout} s (killed)')
        return dict(spec, status='ok', median_s=1.0)
    monkeypatch.setattr(common, 'run_worker', fake_worker)
    path = tmp_path / 'r.json'
    seen = []

    def summarise(rows):
        if path.exists():  # what a run stopped from outside would have left
            seen.append(len(json.loads(path.read_text())['rows']))
        return {}

    args = argparse.Namespace(batch=1, repeats=1, amp=False, note='test', row_timeout=1, json=str(path))
    specs = [dict(name='a', compile=True, slow=True, device='cuda'), dict(name='b', compile=False, slow=False, device='cuda'),
             dict(name='c', compile=True, slow=False, device='cuda')]
    out = run_rows('unused', specs, None, summarise, args)
    assert [r['name'] for r in out['rows']] == ['b', 'a', 'c']
    assert 'TimeoutError' in out['rows'][1]['error'] and out['rows'][2]['median_s'] == 1.0
    assert seen == [1, 2, 3] and len(json.loads(path.read_text())['rows']) == 3
    assert out['machine_load']['note'] == 'test'


def test_the_input_pipeline_benchmark_runs_both_loaders_on_the_same_files(tmp_path):
    import json

    from coma.benchmarks.input_pipeline import run
    report = run(str(tmp_path / 'jpegs'), rounds=1, batch=4, per_class=2, out=str(tmp_path / 'r.json'))
    assert report['files'] == 20 and set(report['images_per_s']) == {'ours', 'timm'}
    assert report['ratio_ours_to_timm'] > 0 and json.load(open(tmp_path / 'r.json'))['rounds'] == 1
