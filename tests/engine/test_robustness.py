"""A non-finite loss stops training by name and iteration, keeping only good checkpoints; bad config keys are named."""
import math

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.runner import Runner

import coma  # noqa: F401
from coma.engine import safe_torch_load


@MODELS.register_module(force=True)
class BlowUp(BaseModel):
    """Finite losses until ``bad_from`` iterations have run, then NaN."""

    def __init__(self, bad_from=5):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.bad_from, self.calls = bad_from, 0

    def forward(self, inputs, mode='tensor'):
        self.calls += 1
        loss = self.linear(inputs).pow(2).mean()
        if self.calls > self.bad_from:
            loss = loss * float('nan')
        return dict(loss=loss)


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.ones(2) * i)


def _blow_up_runner(work_dir, **default_hooks):
    """20 iterations of :class:`BlowUp` (NaN from iteration 6) with ``FiniteLossHook``."""
    return Runner(
        model=dict(type='BlowUp', bad_from=5), work_dir=str(work_dir),
        train_dataloader=dict(dataset=Data(), batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=20), default_hooks=default_hooks,
        custom_hooks=[dict(type='FiniteLossHook')], default_scope=None)


def test_nan_loss_stops_with_the_iteration_and_keeps_good_checkpoints(tmp_path):
    runner = _blow_up_runner(tmp_path, checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
    with pytest.raises(FloatingPointError, match=r'non-finite loss = nan at iteration 6 .*Last good checkpoint: .*iter_4.pth'):
        runner.train()
    saved = sorted(p.name for p in tmp_path.glob('iter_*.pth'))
    assert saved == ['iter_2.pth', 'iter_4.pth']
    for name in saved:
        state = safe_torch_load(str(tmp_path / name))['state_dict']
        assert all(math.isfinite(float(v.abs().sum())) for v in state.values())


def test_a_non_finite_loss_found_at_the_next_log_line_names_its_own_iteration(tmp_path):
    """The losses are read at the logger's interval (no host read per iteration): a NaN at iteration 6
    is found at iteration 8, the next log line, and named as iteration 6; no checkpoint is written."""
    runner = _blow_up_runner(tmp_path, runtime_info=dict(type='DeferredRuntimeInfoHook'),
                             logger=dict(type='LoggerHook', interval=4),
                             checkpoint=dict(type='CheckpointHook', interval=10, by_epoch=False))
    with pytest.raises(FloatingPointError, match=r'non-finite loss = nan at iteration 6 .*none saved yet'):
        runner.train()
    assert runner.model.calls == 8 and not list(tmp_path.glob('iter_*.pth'))


def test_misspelled_model_key_is_named():
    with pytest.raises(TypeError, match='drop_path_rat'):
        MODELS.build(dict(type='DyViT', arch='nano', drop_path_rat=0.1))
    with pytest.raises(KeyError, match="unknown arch 'tinny'.*allowed.*'tiny'"):
        MODELS.build(dict(type='DyViT', arch='tinny'))
