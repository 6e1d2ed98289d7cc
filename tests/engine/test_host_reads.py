"""No training iteration waits for the device, except where the logger reads the losses.

A read of a device value on the host (``.item()``, ``float(t)``, ``bool(t)``, ``nonzero``, ...) makes
the CPU wait until the GPU has finished everything queued before it: a GPU run then never has the next
step queued while one runs. This test trains the full pre-training recipe (its optimizer wrapper,
hooks and data preprocessor; DyViT-N and small images) on the real Runner and counts, per iteration,
the ATen ops that read device values on the host.
"""
import os.path as osp
from collections import Counter

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.utils._python_dispatch import TorchDispatchMode

import coma  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECIPE = osp.join(ROOT, 'imagenet_configs', 'coma_dyvit-b_8xb256-amp-coslr-800e_in1k.py')
#: ATen ops that hand a device value to the host (``.item()``, ``int()``, ``float()`` and ``bool()``
#: all dispatch ``_local_scalar_dense``) or whose output shape depends on device values
HOST_READS = {'aten._local_scalar_dense', 'aten.nonzero', 'aten.is_nonzero', 'aten.equal', 'aten.masked_select',
              'aten.unique', 'aten._unique2', 'aten.allclose', 'aten.repeat_interleave'}
LOG_INTERVAL = 3
#: reads of tensors that live on the host on a GPU too: mmengine's ``stack_batch`` builds a CPU tensor of
#: the images' shapes (from Python ints) and compares its sum with 0
HOST_TENSORS = ('mmengine/model/utils.py', )


class HostReads(TorchDispatchMode):
    """Counts the host reads per training iteration (``iteration`` is set by :class:`Marker`)."""

    def __init__(self):
        super().__init__()
        self.iteration = None
        self.reads = Counter()
        self.where = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = f'aten.{func._overloadpacket.__name__}'
        if self.iteration is not None and name in HOST_READS:
            import traceback
            stack = traceback.format_stack(limit=14)[:-2]
            if not any(site in frame for frame in stack[-4:] for site in HOST_TENSORS):
                self.reads[self.iteration] += 1
                self.where.setdefault(self.iteration, (name, stack))
        return func(*args, **(kwargs or {}))


class Marker(Hook):
    priority = 'HIGHEST'

    def __init__(self, mode):
        self.mode = mode

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.mode.iteration = runner.iter

    def after_train(self, runner):
        self.mode.iteration = None


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    from coma.datasets.demo import make_imagenet
    out = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet(out, per_class=(3, 1), size=64)
    return out


def _recipe(work_dir, data_root):
    cfg = Config.fromfile(RECIPE)
    cfg.work_dir = str(work_dir)
    cfg.model.backbone = dict(type='DyViT', arch='nano', out_indices=(3,))
    cfg.model.decoder = dict(type='CoMADecoder', embed_dim=64, depth=1, num_heads=2)
    cfg.train_dataloader.update(batch_size=4, num_workers=0, persistent_workers=False, pin_memory=False)
    cfg.train_dataloader.dataset.update(data_root=data_root, data_prefix=dict(img_path='train'))
    cfg.train_dataloader.dataset.pipeline = [dict(type='LoadImage'), dict(type='ResizeCenterCrop', size=64),
                                             dict(type='PackInputs')]
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = LOG_INTERVAL
    cfg.optim_wrapper.optimizer.fused = True  # as the constructor sets it on a GPU: the step count stays there
    cfg.model_wrapper_cfg = None
    cfg.launcher = 'none'
    return cfg


def test_training_iterations_read_the_device_only_when_logging(image_folder, tmp_path, monkeypatch):
    from coma.models import CoMA
    monkeypatch.setattr(CoMA, 'eval_interval', 2)
    cfg = _recipe(tmp_path, image_folder)
    runner = Runner.from_cfg(cfg)
    mode = HostReads()
    runner.register_hook(Marker(mode))
    with mode:
        runner.train()
    iters = len(runner.train_dataloader)
    logging = {i for i in range(iters) if (i + 1) % LOG_INTERVAL == 0 or i + 1 == iters}
    quiet = {i: n for i, n in mode.reads.items() if i not in logging}
    assert not quiet, f'host reads outside the logging iterations {sorted(logging)}: {quiet}; first: ' + \
        ''.join(mode.where[min(quiet)][1]) + mode.where[min(quiet)][0]
    assert set(mode.reads) == logging, (mode.reads, logging)
    assert isinstance(runner.optim_wrapper, coma.engine.AutocastOptimWrapper)  # no GradScaler
    # the log still has every iteration's loss, each from its own iteration
    scalars = runner.message_hub.get_scalar('train/loss')
    assert len(scalars.data[0]) == iters and all(torch.isfinite(torch.tensor(scalars.data[0])))
