"""mmdet's launch conventions on CPU: dist_test.sh under torchrun, slurm_train.sh / slurm_test.sh under a
stand-in ``srun`` (one machine, slurm's variables set per task), ``--amp`` through our tools and ``mim train``."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from _helpers import ROOT, metrics

FT_CFG = osp.join(ROOT, 'imagenet_configs', 'finetune_dyvit-n_1xb32-coslr-10e_demo.py')
DET_CFG = osp.join(ROOT, 'mmdet_configs', 'dyvit', 'mask-rcnn_dyvit-n_fpn_demo.py')
SEG_CFG = osp.join(ROOT, 'mmseg_configs', 'dyvit', 'upernet_dyvit-n_demo.py')
# slurm's srun on one machine: --ntasks copies of the command, each with SLURM_PROCID, SLURM_LOCALID,
# SLURM_NTASKS and SLURM_NODELIST, as srun sets them; its arguments are written to $FAKE_SRUN_LOG
FAKE_SRUN = r'''#!/usr/bin/env bash
echo "$@" > "$FAKE_SRUN_LOG"
n=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ntasks=*) n=${1#--ntasks=}; shift ;;
    -p|-J|--partition|--job-name) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
pids=()
for ((i = 0; i < n; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$n SLURM_NODELIST=localhost "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    from coma.datasets.demo import make_imagenet
    out = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet(out, per_class=(1, 1), size=64)
    return out


def _opts(root):
    return [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', 'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1']


#: torch's rendezvous variables: the launchers set them; inherited ones would point the tasks elsewhere
RENDEZVOUS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')


def _bash(script, *args, env):
    full = {k: v for k, v in os.environ.items() if k not in RENDEZVOUS and not k.startswith('SLURM_')}
    full.update(PYTHON=sys.executable, OMP_NUM_THREADS='1', **env)
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=full)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_slurm_train_and_test_and_dist_test_run_two_processes(image_folder, tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(FAKE_SRUN)
    (bin_dir / 'srun').chmod(0o755)
    slurm = dict(PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}', FAKE_SRUN_LOG=str(tmp_path / 'srun.txt'),
                 GPUS='2', GPUS_PER_NODE='2', CPUS_PER_TASK='1', MASTER_PORT='29591')
    work = tmp_path / 'train'
    log = _bash('slurm_train.sh', 'part', 'job', FT_CFG, str(work), '--cfg-options', *_opts(image_folder), env=slurm)
    srun_args = (tmp_path / 'srun.txt').read_text().split()
    assert srun_args[:2] == ['-p', 'part'] and {'--job-name=job', '--ntasks=2', '--ntasks-per-node=2',
                                                '--gres=gpu:2', '--cpus-per-task=1', '--kill-on-bad-exit=1'} <= set(srun_args)
    assert 'Distributed training is not used' not in log
    run_log = open(next(work.glob('*/*.log'))).read()
    assert 'Distributed training: True' in run_log and 'GPU number: 2' in run_log
    checkpoint = str(work / 'epoch_1.pth')
    _bash('slurm_test.sh', 'part', 'job', FT_CFG, checkpoint, '--work-dir', str(tmp_path / 'slurm_test'),
          '--cfg-options', *_opts(image_folder), env=slurm)
    _bash('dist_test.sh', FT_CFG, checkpoint, '2', '--work-dir', str(tmp_path / 'dist_test'),
          '--cfg-options', *_opts(image_folder), env=dict(PORT='29592'))
    one, two = metrics(tmp_path / 'slurm_test'), metrics(tmp_path / 'dist_test')
    assert 'accuracy/top1' in one and all(one[k] == two[k] for k in ('accuracy/top1', 'accuracy/top5'))


def test_slurm_launcher_names_a_missing_variable(image_folder, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith('SLURM_')}
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), FT_CFG, '--launcher', 'slurm',
                           '--work-dir', str(tmp_path), '--cfg-options', *_opts(image_folder)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0 and '$SLURM_PROCID is not set' in proc.stderr


@pytest.mark.parametrize('package,cfg', [('mmdet', DET_CFG), ('mmseg', SEG_CFG)], ids=['mmdet', 'mmseg'])
def test_mim_train_with_amp_runs_one_iteration(demo_data, tmp_path, package, cfg):
    """mmdet's ``--amp`` sets ``type='AmpOptimWrapper'`` (mmengine's asserts a GPU, and takes no other keys);
    mmseg's asserts ``OptimWrapper``. Our configs build coma's AmpOptimWrapper: float32 here, on CPU."""
    if package == 'mmdet':
        root = demo_data / 'coco'
        opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
                f'val_evaluator.ann_file={root}/annotations/instances_val2017.json', 'train_cfg.max_epochs=1',
                'train_dataloader.dataset.indices=4', 'val_dataloader.dataset.indices=2', 'train_cfg.val_interval=100']
    else:
        root = demo_data / 'ade'
        opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
                'train_cfg.max_iters=1', 'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1',
                'train_dataloader.batch_size=2', 'val_dataloader.dataset.indices=2']
    opts += ['train_dataloader.num_workers=0', 'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
             'train_dataloader.persistent_workers=False']
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    proc = subprocess.run([mim, 'train', package, cfg, '--gpus', '0', '--amp', '-y', '--work-dir', str(tmp_path),
                           '--cfg-options', *opts], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    dumped = open(next(tmp_path.glob('*.py'))).read()  # the config the run used, as mmengine wrote it
    assert "type='AmpOptimWrapper'" in dumped and "_scope_='coma'" in dumped
    assert list(tmp_path.glob('*_1.pth'))  # one iteration trained and saved


@pytest.mark.parametrize('cfg', [DET_CFG, SEG_CFG, osp.join(ROOT, 'mmdet_configs', 'dyvit', 'mask-rcnn_dyvit-t_fpn_1x_coco.py'),
                                 osp.join(ROOT, 'mmseg_configs', 'dyvit', 'upernet_dyvit-t_8xb2-160k_ade20k-512x512.py')],
                         ids=osp.basename)
def test_amp_of_mmdet_mmseg_and_ours_builds_a_wrapper_on_this_machine(cfg):
    """mmdet's rewrite, mmseg's check and our ``--amp`` on every kind of downstream config; AMP already on stays."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper, build_optim_wrapper
    from mmengine.registry import DefaultScope

    from coma.engine.launch import enable_amp
    model = torch.nn.Linear(2, 2)
    base = Config.fromfile(cfg)
    assert base.optim_wrapper.get('type') in ('OptimWrapper', 'AmpOptimWrapper')  # mmseg's --amp asserts this
    mmdet_amp = base.optim_wrapper.copy()
    mmdet_amp.update(type='AmpOptimWrapper', loss_scale='dynamic')
    ours = Config.fromfile(cfg)
    enable_amp(ours)
    if base.optim_wrapper.type == 'AmpOptimWrapper':
        assert ours.optim_wrapper == base.optim_wrapper
    for wrapper in (mmdet_amp, ours.optim_wrapper):
        wrapper = {k: v for k, v in wrapper.items() if k not in ('constructor', 'paramwise_cfg')}
        with DefaultScope.overwrite_default_scope(base.default_scope):
            built = build_optim_wrapper(model, wrapper)
        assert type(built) is OptimWrapper  # float32 on CPU: mmcv's CPU ops take float32 only
