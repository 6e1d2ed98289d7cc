"""Launch helpers of tools/train.py: lr scaling from the real batch, slurm's variables."""
import logging
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

from coma.engine.launch import scale_lr, slurm_environment

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN = osp.join(ROOT, 'imagenet_configs', 'coma_dyvit-b_8xb256-amp-coslr-800e_in1k.py')


@pytest.mark.parametrize('procs,accumulate,expect', [('1', 1, 256 / 2048), ('1', 4, 1024 / 2048), ('8', 1, 1.0),
                                                     ('4', 2, 1.0)])
def test_auto_scale_lr_counts_processes_batch_and_accumulation(monkeypatch, procs, accumulate, expect):
    monkeypatch.setenv('WORLD_SIZE', procs)
    cfg = Config.fromfile(PRETRAIN)
    cfg.launcher = 'pytorch'
    cfg.optim_wrapper.accumulative_counts = accumulate
    lr = cfg.optim_wrapper.optimizer.lr
    assert scale_lr(cfg, enable=True) == pytest.approx(expect)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr * expect)
    assert cfg.auto_scale_lr.enable is False  # mmengine does not scale a second time


def test_without_the_flag_the_lr_stays_and_the_warning_says_what_to_pass(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    cfg = Config.fromfile(PRETRAIN)
    cfg.launcher = 'none'
    lr = cfg.optim_wrapper.optimizer.lr
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        assert scale_lr(cfg) is None
    finally:
        logger.removeHandler(handler)
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert any('meant for a batch of 2048' in m and 'Pass --auto-scale-lr to scale it by 256/2048' in m for m in messages)


def test_slurm_variables_become_torchs(monkeypatch):
    import os
    # a copy of the environment: what slurm_environment sets must not reach later tests' subprocesses
    monkeypatch.setattr(os, 'environ', {k: v for k, v in os.environ.items()
                                        if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')})
    monkeypatch.setenv('PATH', '/nonexistent')  # no scontrol: a plain node list is read as it is
    monkeypatch.setenv('SLURM_PROCID', '3')
    monkeypatch.setenv('SLURM_NTASKS', '8')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'node7,node8')
    slurm_environment()
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'], os.environ['MASTER_ADDR'],
            os.environ['MASTER_PORT']) == ('3', '8', '1', 'node7', '29500')
    del os.environ['MASTER_ADDR']
    os.environ['SLURM_NODELIST'] = 'node[7-8]'
    with pytest.raises(KeyError, match='set MASTER_ADDR'):
        slurm_environment()
