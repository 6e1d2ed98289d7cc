"""The ImageNet pre-training loop on the real mmengine Runner: resume, torchrun, conversion, pictures."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import coma  # noqa: F401
from coma.engine import safe_torch_load

from _helpers import kill_after, kill_point

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BASE = osp.join(ROOT, 'imagenet_configs', 'coma_dyvit-n_1xb32-coslr-4e_demo.py')
# the demo config with a deterministic pipeline (no random crop/flip): two runs see identical batches
TEST_CFG = f"""_base_ = '{BASE}'
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'), dict(type='ResizeCenterCrop', size=64), dict(type='PackInputs')]))
"""


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    from coma.datasets.demo import make_imagenet
    out = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet(out, per_class=(3, 1), size=64)
    with open(osp.join(out, 'cfg.py'), 'w') as f:
        f.write(TEST_CFG)
    return out


def train_cmd(work_dir, data_root, epochs, batch=4, extra=(), nproc=1, resume=False, cfg=None):
    opts = [f'train_dataloader.dataset.data_root={data_root}', 'train_dataloader.dataset.data_prefix.img_path=train',
            f'train_cfg.max_epochs={epochs}',
            f'train_dataloader.batch_size={batch}', 'train_dataloader.num_workers=0',
            'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=5',
            'default_hooks.logger.interval=1', *extra]
    args = [osp.join(ROOT, 'tools', 'train.py'), cfg or osp.join(data_root, 'cfg.py'), '--work-dir', str(work_dir), '--cfg-options', *opts]
    if resume:
        args.append('--resume')
    if nproc > 1:
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', str(nproc),
               '--master-port', '29561', *args, '--launcher', 'pytorch']
    else:
        cmd = [sys.executable, *args]
    return cmd


def train(work_dir, data_root, epochs, env=None, **kwargs):
    """Runs :func:`train_cmd`; ``env``: variables added to the environment (PYTHONPATH is prepended)."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        full_env[key] = value + (os.pathsep + full_env[key] if key == 'PYTHONPATH' and full_env.get(key) else '')
    proc = subprocess.run(train_cmd(work_dir, data_root, epochs, **kwargs), cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env=full_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def losses(work_dir):
    rows = []
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(osp.join(root, 'scalars.json')) as f:
                rows += [json.loads(line) for line in f]
    return {r['step']: r['loss'] for r in rows if 'loss' in r}


def weights(path):
    return safe_torch_load(path, map_location='cpu')['state_dict']


def test_resume_gives_the_uninterrupted_run(image_folder, tmp_path):
    full, part = tmp_path / 'full', tmp_path / 'part'
    train(full, image_folder, 3)
    train(part, image_folder, 1)  # the run stops (is killed) after epoch 1 ...
    train(part, image_folder, 3, resume=True)  # ... and resumes
    lf, lp = losses(full), losses(part)
    assert len(lf) == 3 * 7 and set(lf) == set(lp)
    for step in lf:
        assert lp[step] == pytest.approx(lf[step], rel=1e-5, abs=1e-6), step
    wf, wp = weights(full / 'epoch_3.pth'), weights(part / 'epoch_3.pth')
    assert set(wf) == set(wp) and any(k.startswith('frozen_backbone.') for k in wf)
    for key in wf:
        torch.testing.assert_close(wp[key], wf[key], rtol=1e-5, atol=1e-6, msg=key)
    assert int(wf['mask_step']) == 21


def test_sigkill_then_resume_gives_the_uninterrupted_run(image_folder, tmp_path):
    """SIGKILL after a random iteration of epoch 2, resume: the same weights as an uninterrupted run."""
    import signal
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    train(full, image_folder, 3)
    k, label = kill_point(1, 6)  # of the 7 iterations of epoch 2
    rc = kill_after(train_cmd(killed, image_folder, 3), r'Epoch\(train\)\s*\[2\]\[\s*(\d+)/', k)
    assert rc == -signal.SIGKILL, f'the run ended before the kill ({label})'
    assert not (killed / 'epoch_3.pth').exists(), label
    train(killed, image_folder, 3, resume=True)
    wf, wk = weights(full / 'epoch_3.pth'), weights(killed / 'epoch_3.pth')
    for key in wf:
        torch.testing.assert_close(wk[key], wf[key], rtol=1e-5, atol=1e-6, msg=f'{key} ({label})')


#: a constant lr at which 7 AdamW steps move the weights about 700x the comparison's tolerance
#: (inside the demo's warm-up no weight moved more than the tolerance: a missing all-reduce passed)
MOVING = ['train_dataloader.sampler.shuffle=False', 'param_scheduler=None', 'optim_wrapper.optimizer.lr=1e-3']
#: a DDP wrapper whose ranks never all-reduce their gradients (each trains on its own half-batch)
NO_SYNC = """
from mmengine.registry import MODEL_WRAPPERS
from coma.engine.launch import CPUDistributedDataParallel


@MODEL_WRAPPERS.register_module()
class NoSyncDDP(CPUDistributedDataParallel):
    def train_step(self, data, optim_wrapper):
        with self.no_sync():
            return super().train_step(data, optim_wrapper)
"""


def _max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a if k.startswith('backbone.'))


def test_torchrun_two_processes_match_one(image_folder, tmp_path):
    """2 processes x batch 2 = 1 process x batch 4, at an lr where the weights move far; and a negative
    control: the same 2 processes without the gradient all-reduce differ far beyond the tolerance."""
    start, one, two, unsynced = (tmp_path / n for n in ('start', 'one', 'two', 'unsynced'))
    train(start, image_folder, 1, batch=4, extra=MOVING[:2] + ['optim_wrapper.optimizer.lr=0.0'])
    train(one, image_folder, 1, batch=4, extra=MOVING)
    log = train(two, image_folder, 1, batch=2, nproc=2, extra=MOVING)
    assert 'Distributed training is not used' not in log
    w0, w1, w2 = (weights(d / 'epoch_1.pth') for d in (start, one, two))
    assert _max_diff(w1, w0) > 1e-3  # 100x the tolerance below at least
    for key in w1:
        if key.startswith('backbone.'):
            torch.testing.assert_close(w2[key], w1[key], rtol=1e-4, atol=1e-5, msg=key)
    (tmp_path / 'no_sync_ddp.py').write_text(NO_SYNC)
    (tmp_path / 'no_sync.py').write_text(
        f"_base_ = '{osp.join(image_folder, 'cfg.py')}'\n"
        "custom_imports = dict(imports=['coma', 'no_sync_ddp'], allow_failed_imports=False)\n"
        "model_wrapper_cfg = dict(type='NoSyncDDP')\n")
    train(unsynced, image_folder, 1, batch=2, nproc=2, env=dict(PYTHONPATH=str(tmp_path)), extra=MOVING,
          cfg=str(tmp_path / 'no_sync.py'))
    assert _max_diff(weights(unsynced / 'epoch_1.pth'), w1) > 1e-3


def test_convert_and_load_into_downstream_backbones(image_folder, tmp_path):
    work = tmp_path / 'w'
    train(work, image_folder, 1)
    from coma.models.checkpoint import convert_pretrain_checkpoint as convert
    out = tmp_path / 'backbone.pth'
    summary = convert(str(work / 'epoch_1.pth'), str(out))
    assert summary['missing'] == ['norm0.bias', 'norm0.weight', 'norm1.bias', 'norm1.weight',
                                  'norm2.bias', 'norm2.weight']  # output norms pre-training never used
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for registry in (DET, SEG):
        bb = registry.build(dict(type='DyViT', arch='nano', init_cfg=dict(type='Pretrained', checkpoint=str(out))))
        bb.init_weights()
        torch.testing.assert_close(bb.stages[1].blocks[0].attn.q.weight,
                                   weights(str(out))['stages.1.blocks.0.attn.q.weight'])
    # a wrong architecture fails with the mismatched keys and shapes
    from coma.models.checkpoint import load_backbone_checkpoint
    from coma.models import DyViT
    with pytest.raises(ValueError, match=r'shape mismatches \[.*checkpoint \(.*\) vs model'):
        load_backbone_checkpoint(DyViT('tiny'), str(out))
    # pictures
    subprocess.run([sys.executable, 'tools/visualize_reconstruction.py', str(work / 'epoch_1.pth'),
                    osp.join(image_folder, 'val', 'chelsea', 'chelsea_0000.jpg'), '--size', '64',
                    '--out', str(tmp_path / 'recon.png')], cwd=ROOT, check=True, capture_output=True)
    assert (tmp_path / 'recon.png').stat().st_size > 1000
