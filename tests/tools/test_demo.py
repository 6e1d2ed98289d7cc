"""tools/demo.py's orchestration: stages side by side, done markers, skipping, clear failures."""
import os.path as osp
import subprocess
import sys

from _helpers import ROOT, run


def test_stages_run_side_by_side_and_are_skipped_when_done(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    args = ('--stages', 'data', 'masks', 'card', 'report', '--jobs', '2', '--work-dir', str(work),
            '--data-root', str(data))
    log = run('demo.py', *args)
    for stage in ('data', 'masks', 'card'):
        assert (work / f'.{stage}.done').exists(), log[-2000:]
        assert f'[{stage}] [demo' in log  # each child's lines carry its stage name
    assert (work / 'mask_frequency.png').exists() and (work / 'dyvit_feature_maps.png').exists()
    assert osp.isdir(data / 'coco' / 'train2017') and osp.isdir(data / 'imagenet' / 'val')
    assert '| stage | wall time (s) |' in log and '| masks |' in log
    again = run('demo.py', *args)
    assert again.count('finished before') == 3, again[-2000:]


def test_full_recipe_without_datasets_names_the_missing_folders(tmp_path):
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--recipe', 'full', '--stages', 'data',
                           'pretrain', '--data-root', str(tmp_path / 'nowhere'), '--work-dir', str(tmp_path / 'w')],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'missing dataset folders' in out and 'coco/train2017' in out, out[-2000:]
    assert not (tmp_path / 'w' / '.pretrain.done').exists()  # the dependent stage never started
