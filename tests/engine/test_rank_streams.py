"""Per-rank random streams under torchrun (2 gloo processes): ranks draw their own numbers, every rank's
states are saved, and a resumed run equals an uninterrupted one."""
import json
import os
import os.path as osp
import subprocess
import sys

import torch

from coma.engine import safe_torch_load
from coma.engine.hooks import rank_seed

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FT_CFG = osp.join(ROOT, 'imagenet_configs', 'finetune_dyvit-n_1xb32-coslr-10e_demo.py')
# records a digest of each rank's torch, numpy and Python states before every iteration (draws nothing)
PROBE = '''
import hashlib, json, os, random
import numpy as np, torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class StreamProbe(Hook):
    priority = 'LOWEST'

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        digest = hashlib.sha256(torch.get_rng_state().numpy().tobytes() + repr(random.getstate()).encode()
                                + np.random.get_state()[1].tobytes()).hexdigest()[:16]
        with open(os.path.join(runner.work_dir, f'streams_rank{get_rank()}.jsonl'), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter, digest=digest)) + '\\n')
'''


def _train(work, folder, probe_dir, epochs, port, resume=False):
    opts = [f'train_dataloader.dataset.data_root={folder}', f'val_dataloader.dataset.data_root={folder}',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=1', 'val_dataloader.num_workers=0',
            f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=100', 'val_dataloader.dataset.indices=2',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=5',
            'default_hooks.logger.interval=1']
    env = dict(os.environ, PYTHONPATH=str(probe_dir) + os.pathsep + os.environ.get('PYTHONPATH', ''),
               OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2', '--master-port', str(port),
           osp.join(ROOT, 'tools', 'train.py'), str(probe_dir / 'cfg.py'), '--launcher', 'pytorch', '--work-dir', str(work),
           '--cfg-options', *opts] + (['--resume'] if resume else [])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _streams(work, rank):
    with open(work / f'streams_rank{rank}.jsonl') as f:
        rows = [json.loads(line) for line in f]
    return {r['iter']: r['digest'] for r in rows}


def test_ranks_draw_their_own_numbers_and_resume_restores_every_rank(tmp_path):
    """Fine-tuning (mixup/cutmix, random erasing, drop path, a data worker per rank), 2 processes: the
    ranks' streams differ at every iteration; 1 epoch + ``--resume`` to 2 gives the uninterrupted run's
    streams on both ranks and its weights."""
    from coma.datasets.demo import make_imagenet
    folder = tmp_path / 'imagenet'
    make_imagenet(str(folder), per_class=(2, 1), size=64)  # 20 train images: 5 steps of 2 x 2 an epoch
    (tmp_path / 'stream_probe.py').write_text(PROBE)
    (tmp_path / 'cfg.py').write_text(f"_base_ = '{FT_CFG}'\ncustom_imports = dict(imports=['coma', 'stream_probe'])\n"
                                     "custom_hooks = [dict(type='FiniteLossHook'), dict(type='RNGStateHook'), "
                                     "dict(type='StreamProbe')]\n")
    full, part = tmp_path / 'full', tmp_path / 'part'
    _train(full, folder, tmp_path, 2, 29571)
    _train(part, folder, tmp_path, 1, 29572)
    _train(part, folder, tmp_path, 2, 29573, resume=True)
    full0, full1 = _streams(full, 0), _streams(full, 1)
    assert sorted(full0) == list(range(10))
    assert all(full0[i] != full1[i] for i in full0), 'the ranks drew the same random numbers'
    for rank in (0, 1):
        assert _streams(part, rank) == _streams(full, rank), f'rank {rank}: the resumed streams differ'
    checkpoint = safe_torch_load(str(part / 'epoch_1.pth'))
    assert len(checkpoint['rng_state']['ranks']) == 2
    wf = safe_torch_load(str(full / 'epoch_2.pth'))['state_dict']
    wp = safe_torch_load(str(part / 'epoch_2.pth'))['state_dict']
    for key in wf:
        torch.testing.assert_close(wp[key], wf[key], rtol=1e-5, atol=1e-6, msg=key)


def test_rank_zero_keeps_the_seed_and_other_ranks_hash_it():
    assert rank_seed(0, 0) == 0 and rank_seed(7, 0) == 7
    seeds = {rank_seed(0, r) for r in range(1, 64)} | {rank_seed(1, r) for r in range(1, 64)}
    assert len(seeds) == 126 and not seeds & set(range(64))
