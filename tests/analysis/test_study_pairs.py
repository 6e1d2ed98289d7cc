"""The efficiency study's paired differences (coma.analysis.study.paired): per seed, over the seeds both arms ran."""
from coma.analysis.study import _paired_table, paired


def _r(method, seed, epochs, lp, ft):
    return dict(method=method, seed=seed, epochs=epochs, linprobe_top1=lp, finetune_top1=ft)


def test_pairs_are_per_seed_over_the_common_seeds():
    results = [_r('coma', 0, 2, 70, 50), _r('coma', 1, 2, 60, 40), _r('mae', 0, 16, 65, 52), _r('mae', 1, 16, 66, 41),
               _r('mae', 2, 16, 99, 99), _r('random', 0, 0, 64, 51), _r('random', 1, 0, 62, 45)]
    got = {(p['a'], p['b']): p for p in paired(results)}
    assert set(got) == {(('coma', 2), ('mae', 16)), (('coma', 2), ('random', 0)), (('mae', 16), ('random', 0))}
    p = got[(('coma', 2), ('mae', 16))]
    assert p['seeds'] == [0, 1] and p['linprobe_top1'] == [5, -6] and p['finetune_top1'] == [-2, -1]
    assert got[(('mae', 16), ('random', 0))]['linprobe_top1'] == [1, 4]
    table = _paired_table(results)
    assert '| CoMA 2 ep - MAE 16 ep | 2 | -0.5 ± 7.8 | +5 / -6 | -1.5 ± 0.7 | -2 / -1 |' in table
    assert '| MAE 16 ep - random init | 2 |' in table


def test_no_pairs_no_table():
    assert _paired_table([_r('coma', 0, 2, 70, 50)]) == ''
