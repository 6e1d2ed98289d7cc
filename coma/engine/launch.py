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
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['type'] = 'CPUDistributedDataParallel'
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def cpu_friendly_dataloaders(cfg: Config, keys: List[str]) -> None:
    """``persistent_workers`` needs ``num_workers > 0``; turn it off where a config has no workers."""
    for key in keys:
        loader = cfg.get(key)
        if loader and loader.get('num_workers', 0) == 0 and loader.get('persistent_workers'):
            loader['persistent_workers'] = False


def local_rank() -> int:
    return int(os.environ.get('LOCAL_RANK', 0))
