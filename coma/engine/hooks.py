"""Training hooks."""
import math
import os.path as osp
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stops training at the first NaN or inf loss, naming the iteration and the loss.

    It runs before ``CheckpointHook`` in the same iteration, so no checkpoint with weights from a
    non-finite step is written; the checkpoints already on disk are kept.
    """
    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[Dict] = None) -> None:
        for key, value in (outputs or {}).items():
            if 'loss' not in key:
                continue
            value = float(value.detach()) if hasattr(value, 'detach') else float(value)
            if not math.isfinite(value):
                last = osp.join(runner.work_dir, 'last_checkpoint')
                hint = open(last).read().strip() if osp.isfile(last) else 'none saved yet'
                raise FloatingPointError(
                    f'non-finite {key} = {value} at iteration {runner.iter + 1} (epoch {runner.epoch + 1}); '
                    f'training stopped before any checkpoint of this step was saved. Last good checkpoint: '
                    f'{hint}. Lower the learning rate or check the data, then resume.')
