"""The CoMA-vs-MAE efficiency study (tools/study_efficiency.py): its 1-epoch smoke run."""
import json

from mmengine.config import Config

from _helpers import run


def test_study_smoke_run_writes_table_plot_and_results(tmp_path):
    run('study_efficiency.py', '--smoke', '--work-dir', str(tmp_path), '--results', str(tmp_path / 'table.md'),
        '--plot', str(tmp_path / 'plot.png'))
    with open(tmp_path / 'results.json') as f:
        results = json.load(f)
    assert {(r['method'], r['epochs']) for r in results} == {('coma', 1), ('mae', 1), ('random', 0)}
    for r in results:
        assert 0 <= r['linprobe_top1'] <= 100 and 0 <= r['finetune_top1'] <= 100, r
    table = (tmp_path / 'table.md').read_text()
    assert '| CoMA | 1 |' in table and '| MAE | 1 |' in table and '| random init | 0 |' in table
    assert '| CoMA 1 ep - MAE 1 ep | 1 |' in table and '| CoMA 1 ep - random init | 1 |' in table
    assert (tmp_path / 'plot.png').stat().st_size > 1000
    # a rerun skips the finished jobs (each wrote its result.json) and reproduces the table
    log = run('study_efficiency.py', '--smoke', '--work-dir', str(tmp_path), '--results', str(tmp_path / 'again.md'))
    assert (tmp_path / 'again.md').read_text().split('\n\nWall')[0] == table.split('\n\nWall')[0], log[-2000:]
    # selecting methods and skipping the fine-tune (the ablation options) reads the same caches
    log = run('study_efficiency.py', '--smoke', '--methods', 'coma', '--ft-epochs', '0', '--work-dir', str(tmp_path),
              '--results', str(tmp_path / 'coma.md'))
    assert (tmp_path / 'coma.md').read_text().splitlines()[2].startswith('| CoMA | 1 |'), log[-2000:]
    assert '| — |' in (tmp_path / 'coma.md').read_text()
    # fine-tune overrides reach the Runner's config and get their own cache next to the default one
    log = run('study_efficiency.py', '--smoke', '--methods', 'random', '--ft-options', 'optim_wrapper.optimizer.lr=0.0',
              '--work-dir', str(tmp_path), '--results', str(tmp_path / 'lr0.md'))
    run_dir = tmp_path / 'random_s0_e0' / 'finetune_light_1e_optim_wrapper.optimizer.lr=0.0'
    assert (tmp_path / 'random_s0_e0' / 'finetune_light_1e.json').is_file(), log[-2000:]
    assert (run_dir.parent / f'{run_dir.name}.json').is_file(), log[-2000:]
    dumped = Config.fromfile(str(run_dir / 'finetune_dyvit-n_1xb32-coslr-10e_demo.py'))
    assert dumped.optim_wrapper.optimizer.lr == 0.0
    assert 'optim_wrapper.optimizer.lr=0.0' in (tmp_path / 'lr0.md').read_text()
