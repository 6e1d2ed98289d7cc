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
    assert (work / 'wall.json').exists() and 'this invocation, start to end' in log
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


def test_report_gives_mean_and_std_over_seeds_as_json(tmp_path):
    import json
    work = tmp_path / 'work'
    values = {0: dict(coma=(0.10, 0.12, 60.0), scratch=(0.06, 0.07, 55.0)),
              1: dict(coma=(0.14, 0.10, 62.0), scratch=(0.08, 0.09, 57.0))}
    for seed, inits in values.items():
        (work / f'seed{seed}').mkdir(parents=True)
        for init, (bbox, segm, miou) in inits.items():
            json.dump({'coco/bbox_mAP': bbox, 'coco/segm_mAP': segm}, open(work / f'seed{seed}' / f'det-{init}_metrics.json', 'w'))
            json.dump({'mIoU': miou, 'aAcc': 90.0}, open(work / f'seed{seed}' / f'seg-{init}_metrics.json', 'w'))
        json.dump(dict(seconds=12.5), open(work / f'seed{seed}' / '.det.done', 'w'))
    log = run('demo.py', '--stages', 'report', '--seeds', '0', '1', '--work-dir', str(work))
    report = json.load(open(work / 'report.json'))
    rows = {(r['task'], r['init'], r['metric']): r for r in report['rows']}
    assert set(rows) == {('det', i, m) for i in ('coma', 'scratch') for m in ('bbox_mAP', 'segm_mAP')} | \
        {('seg', i, 'mIoU') for i in ('coma', 'scratch')}
    bbox = rows['det', 'coma', 'bbox_mAP']
    assert bbox['seeds'] == [0, 1] and abs(bbox['mean'] - 0.12) < 1e-9 and abs(bbox['std'] - 0.0282843) < 1e-6
    assert bbox['values'] == [0.10, 0.14]  # each seed's figure, in the order of 'seeds'
    assert rows['seg', 'scratch', 'mIoU']['mean'] == 56.0  # mIoU in %, mAP as a fraction
    assert report['stage_seconds'] == {'det@0': 12.5, 'det@1': 12.5} and 'wall_seconds' in report
    assert '| Mask R-CNN | CoMA pre-trained | bbox_mAP | 0.120 ± 0.028 | 0, 1' in log, log[-1500:]


def test_repeated_seeds_are_refused(tmp_path):
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--stages', 'report', '--seeds', '0', '0',
                           '--work-dir', str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'repeated seed' in proc.stderr


def test_every_recipe_names_existing_configs_and_demo_long_changes_only_the_pretraining():
    from coma.demo import RECIPES
    for name, recipe in RECIPES.items():
        for key in ('pretrain', 'pretrain_mae', 'det', 'seg'):
            assert osp.isfile(osp.join(ROOT, recipe[key])), (name, key, recipe[key])
    demo, long = RECIPES['demo'], RECIPES['demo-long']
    assert {k for k in demo if demo[k] != long[k]} == {'pretrain', 'pretrain_mae'}


def test_with_several_gpus_the_stages_run_one_after_another(tmp_path, monkeypatch):
    """Each stage under ``--gpus N`` is a torchrun job on all N GPUs and one port: never two at once."""
    import argparse

    import coma.demo as demo
    ran = []
    monkeypatch.setattr(demo, 'run_parallel', lambda *a, **k: ran.append('parallel'))
    monkeypatch.setattr(demo, 'run_stage', lambda args, work, stage, seed=None: ran.append(stage))
    args = argparse.Namespace(work_dir=str(tmp_path), stages=['pretrain', 'pretrain-mae', 'report'], seeds=[0],
                              force=False, jobs=2, gpus=8)
    demo.run_demo(args)
    assert ran == ['pretrain', 'pretrain-mae', 'report'] and args.jobs == 1
