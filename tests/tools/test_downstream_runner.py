"""Mask R-CNN (mmdet) and UperNet (mmseg) with DyViT on the real mmengine Runner, on the demo data."""
import os
import os.path as osp
import subprocess
import sys

from _helpers import ROOT, kill_after, kill_point, metrics, run

DET_CFG = osp.join(ROOT, 'mmdet_configs', 'dyvit', 'mask-rcnn_dyvit-n_fpn_demo.py')
SEG_CFG = osp.join(ROOT, 'mmseg_configs', 'dyvit', 'upernet_dyvit-n_demo.py')


def test_mask_rcnn_two_iterations_and_coco_eval(demo_data, tmp_path):
    root = demo_data / 'coco'
    opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', f'val_evaluator.ann_file={root}/annotations/instances_val2017.json',
            f'test_evaluator.ann_file={root}/annotations/instances_val2017.json',
            'train_dataloader.dataset.indices=8', 'test_dataloader.dataset.indices=4', 'train_cfg.max_epochs=1']
    run('train.py', DET_CFG, '--work-dir', str(tmp_path), '--cfg-options', *opts)
    log = run('test.py', DET_CFG, str(tmp_path / 'epoch_1.pth'), '--work-dir', str(tmp_path / 'test'),
              '--show-dir', str(tmp_path / 'vis'), '--cfg-options', *opts)
    result = metrics(tmp_path / 'test')
    assert 'coco/bbox_mAP' in result and 'coco/segm_mAP' in result, log[-2000:]
    assert any(f.endswith('.jpg') or f.endswith('.png') for _, _, fs in os.walk(tmp_path / 'vis') for f in fs)


def test_upernet_two_iterations_and_iou_eval(demo_data, tmp_path):
    root = demo_data / 'ade'
    opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', 'train_dataloader.dataset.indices=16',
            'test_dataloader.dataset.indices=4', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
            'default_hooks.checkpoint.interval=2']
    run('train.py', SEG_CFG, '--work-dir', str(tmp_path), '--cfg-options', *opts)
    run('test.py', SEG_CFG, str(tmp_path / 'iter_2.pth'), '--work-dir', str(tmp_path / 'test'),
        '--show-dir', str(tmp_path / 'vis'), '--cfg-options', *opts)
    result = metrics(tmp_path / 'test')
    assert {'mIoU', 'aAcc', 'mAcc'} <= set(result)


def test_upernet_torchrun_two_cpu_processes_with_syncbn(demo_data, tmp_path):
    """The config keeps SyncBN; under torchrun on CPU our tools wrap with CPUDistributedDataParallel."""
    root = demo_data / 'ade'
    opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.indices=8', 'val_dataloader.dataset.indices=2', 'train_cfg.max_iters=2',
            'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2']
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2', '--master-port',
                           '29583', osp.join(ROOT, 'tools', 'train.py'), SEG_CFG, '--launcher', 'pytorch',
                           '--work-dir', str(tmp_path), '--cfg-options', *opts],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / 'iter_2.pth').exists()


def test_upernet_sigkill_then_resume_gives_the_uninterrupted_run(demo_data, tmp_path):
    """SIGKILL after a random iteration, ``--resume``: the final weights equal an uninterrupted run's.

    UperNet's heads use dropout, so this needs the random states saved by RNGStateHook, and the
    data order that mmengine's iteration loop replays on resume.
    """
    import signal

    import torch

    from coma.engine import safe_torch_load
    root = demo_data / 'ade'
    opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            'train_dataloader.dataset.indices=16', 'train_dataloader.batch_size=4', 'train_cfg.max_iters=6',
            'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=5']
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    run('train.py', SEG_CFG, '--work-dir', str(full), '--cfg-options', *opts)
    k, label = kill_point(3, 5)  # after the checkpoint of iteration 2, before the end
    rc = kill_after([sys.executable, osp.join(ROOT, 'tools', 'train.py'), SEG_CFG, '--work-dir', str(killed),
                     '--cfg-options', *opts], r'Iter\(train\)\s*\[\s*(\d+)/', k)
    assert rc == -signal.SIGKILL, f'the run ended before the kill ({label})'
    assert not (killed / 'iter_6.pth').exists(), label
    run('train.py', SEG_CFG, '--work-dir', str(killed), '--resume', '--cfg-options', *opts)
    wf = safe_torch_load(str(full / 'iter_6.pth'))['state_dict']
    wk = safe_torch_load(str(killed / 'iter_6.pth'))['state_dict']
    assert wf.keys() == wk.keys()
    for key in wf:
        torch.testing.assert_close(wk[key], wf[key], rtol=1e-5, atol=1e-6, msg=f'{key} ({label})')


def test_mask_rcnn_sigkill_then_resume_gives_the_uninterrupted_run(demo_data, tmp_path):
    """SIGKILL after a random iteration of epoch 2 or 3, ``--resume``: the final weights equal an
    uninterrupted run's. The loader's worker starts anew each epoch, seeded from the main process's
    restored state (RNGStateHook), so the resumed epochs draw the uninterrupted run's flips. One thread:
    mmcv's CPU ops sum in a thread-dependent order (two threads give 1e-5 apart on the same run)."""
    import signal

    import torch

    from coma.engine import safe_torch_load
    root = demo_data / 'coco'
    opts = [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={root}/annotations/instances_val2017.json', 'val_dataloader.dataset.indices=2',
            'train_dataloader.dataset.indices=8', 'train_cfg.max_epochs=3', 'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=5', 'default_hooks.logger.interval=1']
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    one = dict(OMP_NUM_THREADS='1')
    run('train.py', DET_CFG, '--work-dir', str(full), '--cfg-options', *opts, env=one)
    k, label = kill_point(3, 5)  # 2 iterations an epoch: after the checkpoint of epoch 1, before the end
    rc = kill_after([sys.executable, osp.join(ROOT, 'tools', 'train.py'), DET_CFG, '--work-dir', str(killed),
                     '--cfg-options', *opts], r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/', k, per_epoch=2, env=one)
    assert rc == -signal.SIGKILL, f'the run ended before the kill ({label})'
    assert not (killed / 'epoch_3.pth').exists(), label
    run('train.py', DET_CFG, '--work-dir', str(killed), '--resume', '--cfg-options', *opts, env=one)
    wf = safe_torch_load(str(full / 'epoch_3.pth'))['state_dict']
    wk = safe_torch_load(str(killed / 'epoch_3.pth'))['state_dict']
    assert wf.keys() == wk.keys()
    for key in wf:
        torch.testing.assert_close(wk[key], wf[key], rtol=1e-5, atol=1e-6, msg=f'{key} ({label})')
