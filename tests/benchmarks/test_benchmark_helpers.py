"""coma.benchmarks: a worker row in its own process, and the summaries (no timing is asserted)."""
import pytest

from coma.benchmarks import backbone, pretrain  # noqa: F401  (both import without side effects)
from coma.benchmarks.common import run_worker, time_median, write_report


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
    calls = []
    assert len(time_median(lambda: calls.append(1), repeats=3, warmup=1)['times_s']) == 3 and len(calls) == 4
