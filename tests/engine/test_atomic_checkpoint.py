"""Checkpoints are written atomically: a kill while one is written leaves the previous one for ``--resume``."""
import os
import os.path as osp
import subprocess
import sys

import torch

from coma.engine import safe_torch_load

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(ROOT, 'imagenet_configs', 'coma_dyvit-n_1xb32-coslr-4e_demo.py')
# writes half of the second checkpoint, then the process is killed (as by the scheduler or OOM killer)
DIE_WRITING = '''
import os, signal
from mmengine.fileio.backends.local_backend import LocalBackend

_put = LocalBackend.put
_count = [0]


def put(self, obj, filepath):
    if '.pth' in str(filepath):
        _count[0] += 1
        if _count[0] == 2:
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return _put(self, obj, filepath)


LocalBackend.put = put
'''


def _train(folder, work, epochs, env=None, resume=False):
    opts = [f'train_dataloader.dataset.data_root={folder}', 'train_dataloader.dataset.data_prefix.img_path=train',
            f'train_cfg.max_epochs={epochs}', 'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1']
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), str(folder / 'cfg.py'), '--work-dir', str(work),
           '--cfg-options', *opts] + (['--resume'] if resume else [])
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS='1', **(env or {})))


def test_a_kill_while_writing_leaves_the_previous_checkpoint_for_resume(tmp_path):
    from coma.datasets.demo import make_imagenet
    folder = tmp_path / 'data'
    make_imagenet(str(folder), per_class=(1, 0), size=64)  # 10 images: 2 steps of 4 an epoch
    (folder / 'cfg.py').write_text(
        f"_base_ = '{BASE}'\ncustom_imports = dict(imports=['coma', 'die_writing'])\n"
        "train_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImage'), "
        "dict(type='ResizeCenterCrop', size=64), dict(type='PackInputs')]))\n")
    (tmp_path / 'die_writing.py').write_text(DIE_WRITING)
    (tmp_path / 'quiet').mkdir()
    (tmp_path / 'quiet' / 'die_writing.py').write_text('')
    killed, full = tmp_path / 'killed', tmp_path / 'full'
    proc = _train(folder, killed, 3, env=dict(PYTHONPATH=str(tmp_path)))
    assert proc.returncode == -9, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (killed / 'last_checkpoint').read_text().strip() == str(killed / 'epoch_1.pth')
    assert safe_torch_load(str(killed / 'epoch_1.pth'))['meta']['epoch'] == 1  # complete and loadable
    assert not (killed / 'epoch_2.pth').exists()
    quiet = dict(PYTHONPATH=str(tmp_path / 'quiet'))
    for work, resume in ((killed, True), (full, False)):
        proc = _train(folder, work, 3, env=quiet, resume=resume)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in killed.glob('*.pth*')) == ['epoch_3.pth']  # max_keep_ckpts=1, no leftovers
    wf = safe_torch_load(str(full / 'epoch_3.pth'))['state_dict']
    wk = safe_torch_load(str(killed / 'epoch_3.pth'))['state_dict']
    for key in wf:
        torch.testing.assert_close(wk[key], wf[key], rtol=1e-5, atol=1e-6, msg=key)
