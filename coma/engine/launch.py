"""Shared set-up for ``tools/train.py`` and ``tools/test.py``."""
import logging
import os
import os.path as osp
from typing import List, Optional

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction  # noqa: F401  (DictAction is re-exported for the tools)
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Reads a config, applies ``--cfg-options``, sets the work dir and launcher.

    Raises:
        FileNotFoundError: the config file is missing, naming it.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    upgrade_model_cfg(cfg, path)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


#: optimizer wrappers that already train in mixed precision
AMP_WRAPPERS = ('AmpOptimWrapper', 'AutoAmpOptimWrapper', 'AutocastOptimWrapper', 'CPUAutocastOptimWrapper')


def enable_amp(cfg: Config) -> None:
    """``--amp``: a config whose wrapper already trains in mixed precision keeps it; otherwise an ImageNet
    loop gets ``AutoAmpOptimWrapper`` (bfloat16 where supported, also on CPU) and a detector or segmenter
    (``default_scope`` mmdet/mmseg) coma's ``AmpOptimWrapper`` (float16 with loss scaling on CUDA, float32
    on CPU: mmcv's ops take no bfloat16). mmdet's and mmseg's own ``--amp`` reach the same wrapper.

    Raises:
        ValueError: the config's wrapper is another custom one, named.
    """
    wrapper = cfg.optim_wrapper
    kind = wrapper.get('type', 'OptimWrapper')
    if kind in AMP_WRAPPERS:
        print_log(f'--amp: the config trains with {kind} already', logger='current')
        return
    if kind != 'OptimWrapper':
        raise ValueError(f'--amp: optim_wrapper.type is {kind!r}; --amp replaces only OptimWrapper')
    if cfg.get('default_scope') in ('mmdet', 'mmseg'):
        wrapper.update(_scope_='coma', type='AmpOptimWrapper', loss_scale='dynamic')
    else:
        wrapper.type = 'AutoAmpOptimWrapper'


def upgrade_model_cfg(cfg: Config, path: str) -> None:
    """Rewrites a pre-training ``model`` written for the algorithms' earlier arguments in today's
    form (:func:`coma.models.algorithms.legacy.upgrade_algorithm_cfg`), with a warning naming each key."""
    from ..models.algorithms.legacy import upgrade_algorithm_cfg
    if not isinstance(cfg.get('model'), dict):
        return
    model, notes = upgrade_algorithm_cfg(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model)
    if notes:
        print_log(f'{path}: the model config uses earlier arguments, read as today\'s: {"; ".join(notes)}',
                  logger='current', level=logging.WARNING)
        cfg.model = model


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for CPU processes: SyncBN (GPU-only in torch) becomes BN.

    Each process then normalises with its own batch statistics.
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        super().__init__(module=revert_sync_batchnorm(module), **kwargs)


def setup_distributed(cfg: Config) -> None:
    """Makes ``--launcher pytorch`` work on CPU-only machines (gloo), leaving the GPU path untouched.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device``; on a machine without CUDA we create
    the gloo process group first (the Runner then skips ``init_dist``), give DDP
    ``device_ids=None`` and wrap with :class:`CPUDistributedDataParallel`.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if cfg.launcher == 'slurm':
        slurm_environment()
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['type'] = 'CPUDistributedDataParallel'
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def world_size(launcher: str) -> int:
    """The number of processes of this run, read from the launcher's environment before it starts."""
    key = dict(pytorch='WORLD_SIZE', slurm='SLURM_NTASKS', mpi='OMPI_COMM_WORLD_SIZE').get(launcher)
    return int(os.environ.get(key, 1)) if key else 1


def scale_lr(cfg: Config, enable: bool = False) -> Optional[float]:
    """Linear lr scaling from the real batch: processes x ``train_dataloader.batch_size`` x
    ``optim_wrapper.accumulative_counts`` (mmengine's own scaling leaves accumulation out).

    With ``enable`` (``--auto-scale-lr``) or ``auto_scale_lr.enable`` in the config, multiplies
    ``optim_wrapper.optimizer.lr`` by ``real / auto_scale_lr.base_batch_size`` and turns mmengine's scaling
    off; otherwise, where the real batch is not the base, logs a warning with exactly what to pass.
    Returns the factor applied, or None.

    Raises:
        KeyError: scaling asked for, but the config has no ``auto_scale_lr.base_batch_size``.
    """
    auto = cfg.get('auto_scale_lr') or {}
    enable = enable or bool(auto.get('enable', False))
    base = auto.get('base_batch_size')
    if base is None:
        if enable:
            raise KeyError(f'--auto-scale-lr: {cfg.filename} has no auto_scale_lr.base_batch_size')
        return None
    procs = world_size(cfg.get('launcher', 'none'))
    batch = cfg.train_dataloader.batch_size
    accumulate = cfg.optim_wrapper.get('accumulative_counts', 1)
    real = procs * batch * accumulate
    how = f'{procs} process(es) x batch {batch} x accumulation {accumulate} = {real}'
    if not enable:
        if real != base:
            print_log(f'the lr {cfg.optim_wrapper.optimizer.lr:g} is meant for a batch of {base}; this run has '
                      f'{how}. Pass --auto-scale-lr to scale it by {real}/{base}, or set '
                      'optim_wrapper.optimizer.lr', logger='current', level=logging.WARNING)
        return None
    factor = real / base
    cfg.optim_wrapper.optimizer.lr = cfg.optim_wrapper.optimizer.lr * factor
    cfg.auto_scale_lr = dict(auto, enable=False)  # applied here, accumulation included
    print_log(f'lr scaled by {real}/{base} ({how}) to {cfg.optim_wrapper.optimizer.lr:g}', logger='current')
    return factor


def slurm_environment() -> None:
    """Sets torch's rendezvous variables from slurm's, as mmengine's slurm launcher does on GPUs: ``RANK``
    (``SLURM_PROCID``), ``WORLD_SIZE`` (``SLURM_NTASKS``), ``LOCAL_RANK`` (``SLURM_LOCALID``), ``MASTER_PORT``
    (kept if set, else 29500) and ``MASTER_ADDR`` (kept if set, else the job's first host).

    Raises:
        KeyError: a slurm variable is missing (not started by ``srun``), named.
    """
    import shutil
    import subprocess
    for key in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        if key not in os.environ:
            raise KeyError(f'--launcher slurm: ${key} is not set; start the job with srun (tools/slurm_train.sh)')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        if shutil.which('scontrol'):
            host = subprocess.run(['scontrol', 'show', 'hostnames', nodes], capture_output=True, text=True,
                                  check=True).stdout.split()[0]
        elif '[' not in nodes:
            host = nodes.split(',')[0]
        else:
            raise KeyError(f'--launcher slurm: cannot expand SLURM_NODELIST={nodes} without scontrol; set MASTER_ADDR')
        os.environ['MASTER_ADDR'] = host


def cpu_friendly_dataloaders(cfg: Config, keys: List[str]) -> None:
    """``persistent_workers`` needs ``num_workers > 0``; turn it off where a config has no workers."""
    for key in keys:
        loader = cfg.get(key)
        if loader and loader.get('num_workers', 0) == 0 and loader.get('persistent_workers'):
            loader['persistent_workers'] = False


def local_rank() -> int:
    return int(os.environ.get('LOCAL_RANK', 0))
