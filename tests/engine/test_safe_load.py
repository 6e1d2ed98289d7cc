"""mmengine checkpoints load and resume on torch 2.14 with weights_only kept on."""
import os
import os.path as osp
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import coma  # noqa: F401
from coma.engine import safe_torch_load, trusted_checkpoints


@MODELS.register_module(force=True)
class ToyRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - targets) ** 2).mean())
        return out


class ToyData(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=g)
        self.y = self.x.sum(1, keepdim=True)

    def __len__(self):
        return 16

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


def _runner(work_dir, max_epochs, resume=False):
    return Runner(
        model=dict(type='ToyRegressor'), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0), resume=resume, default_scope=None)


def test_runner_resume_is_exact(tmp_path):
    full = _runner(tmp_path / 'full', 4)
    full.train()
    part = _runner(tmp_path / 'part', 2)
    part.train()
    # the raw torch.load that mmengine 0.10.7 makes would refuse this checkpoint on torch 2.14
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / 'part' / 'epoch_2.pth')
    resumed = _runner(tmp_path / 'part', 4, resume=True)
    resumed.train()
    assert resumed.iter == full.iter == 16
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b)
    ckpt = _load_checkpoint(str(tmp_path / 'part' / 'epoch_4.pth'))
    assert ckpt['meta']['epoch'] == 4 and 'message_hub' in ckpt


class Exploit:
    def __reduce__(self):
        return (os.system, ('touch /tmp/coma_pwned',))


def test_untrusted_pickle_is_refused_and_opt_in_works(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Exploit()}, path)
    if osp.exists('/tmp/coma_pwned'):
        os.remove('/tmp/coma_pwned')
    with pytest.raises(RuntimeError, match=f'Refusing to unpickle checkpoint {path}.*trusted_checkpoints'):
        CheckpointLoader.load_checkpoint(str(path))
    assert not osp.exists('/tmp/coma_pwned')
    with trusted_checkpoints():
        safe_torch_load(str(path))
    assert osp.exists('/tmp/coma_pwned')
    os.remove('/tmp/coma_pwned')


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save({'w': torch.randn(100, 100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match=f'Cannot read checkpoint {path}.*truncated'):
        CheckpointLoader.load_checkpoint(str(path))
