"""RNGStateHook: the random streams continue across a checkpoint, through the safe loader."""
import random

import numpy as np
import torch

from coma.engine import safe_torch_load
from coma.engine.hooks import RNGStateHook


class _Runner:
    cfg = {}

    class logger:  # noqa: N801
        messages = []

        @classmethod
        def warning(cls, msg):
            cls.messages.append(msg)


def _draw():
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()


def test_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    hook = RNGStateHook()
    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    _draw()
    np.random.randn()  # leaves a cached gaussian in numpy's legacy state
    checkpoint = {}
    hook.before_save_checkpoint(_Runner, checkpoint)
    expected = _draw()
    torch.save(checkpoint, tmp_path / 'c.pth')
    random.seed(0), np.random.seed(0), torch.manual_seed(0)  # what a resumed Runner does first
    hook.after_load_checkpoint(_Runner, safe_torch_load(str(tmp_path / 'c.pth')))
    hook.before_train_iter(_Runner, 0)  # restored just before the first iteration after resuming
    assert _draw() == expected


def test_load_from_does_not_restore(tmp_path):
    hook = RNGStateHook()
    checkpoint = {}
    hook.before_save_checkpoint(_Runner, checkpoint)

    class LoadFrom(_Runner):
        _resume = False
    hook.after_load_checkpoint(LoadFrom, checkpoint)
    assert hook._pending is None


def test_a_checkpoint_without_states_warns():
    RNGStateHook().after_load_checkpoint(_Runner, {})
    assert 'no random states' in _Runner.logger.messages[-1]
