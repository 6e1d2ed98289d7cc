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


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the Python, numpy and torch random states in checkpoints and restores them on resume.

    mmengine's resume restores weights, optimizer, schedulers and the iteration, but re-seeds the
    random generators; dropout, drop path, mixup and other draws of the main process then differ
    from an uninterrupted run. With this hook a resumed run continues the same random streams, so,
    with the data order mmengine replays, it reproduces the uninterrupted run's weights.

    Conditions for an exact resume: a fixed ``randomness.seed`` in the config (with ``seed=None``
    mmengine draws a new seed for the data-loader workers of the resumed run), ``num_workers >= 1``
    (workers have their own, seeded, random states), and an iteration-based loop or a resume at an
    epoch boundary without ``persistent_workers``. The states are restored just before the first
    iteration after resuming (after mmengine has skipped the batches already trained on), and only
    on resume, not for ``load_from``. They are plain tensors and tuples of ints, so checkpoints stay
    loadable with ``weights_only=True``. Only rank 0 writes checkpoints; with
    ``randomness.diff_rank_seed=True`` the states are therefore not restored on the other ranks.
    """
    priority = 'VERY_LOW'
    KEY = 'rng_state'

    def __init__(self) -> None:
        self._pending: Optional[Dict] = None

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        import random

        import numpy as np
        import torch
        np_state = np.random.get_state(legacy=False)
        checkpoint[self.KEY] = dict(
            python=random.getstate(),
            numpy=dict(key=torch.from_numpy(np_state['state']['key'].astype(np.int64)),
                       pos=int(np_state['state']['pos']), has_gauss=int(np_state['has_gauss']),
                       gauss=float(np_state['gauss'])),
            torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        from mmengine.dist import get_rank
        if not getattr(runner, '_resume', True):
            return  # load_from: weights only, the run keeps its own random streams
        state = checkpoint.get(self.KEY)
        if state is None:
            runner.logger.warning('RNGStateHook: the checkpoint holds no random states; the resumed run '
                                  'draws new random numbers (weights will differ from an uninterrupted run)')
            return
        if get_rank() != 0 and runner.cfg.get('randomness', {}).get('diff_rank_seed', False):
            return
        self._pending = state

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            self.restore(self._pending)
            self._pending = None

    @staticmethod
    def restore(state: Dict) -> None:
        """Sets the Python, numpy, torch (and CUDA) random states saved by :meth:`before_save_checkpoint`."""
        import random

        import numpy as np
        import torch
        random.setstate((state['python'][0], tuple(state['python'][1]), state['python'][2]))
        np_state = state['numpy']
        np.random.set_state(dict(bit_generator='MT19937', state=dict(key=np_state['key'].numpy().astype(np.uint32),
                                                                      pos=np_state['pos']),
                                 has_gauss=np_state['has_gauss'], gauss=np_state['gauss']))
        torch.set_rng_state(state['torch'])
        if state['cuda'] and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class MaskEpochHook(Hook):
    """Tells the model which epoch starts (``model.set_epoch(runner.epoch)``), for masks that
    depend on the epoch (CoMA's ``complement_schedule='alternate'``); a model without
    ``set_epoch`` is left alone. A resumed run starts at its saved epoch, so its masks are the
    uninterrupted run's."""
    priority = 'NORMAL'

    def before_train_epoch(self, runner) -> None:
        from mmengine.model import is_model_wrapper
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if hasattr(model, 'set_epoch'):
            model.set_epoch(runner.epoch)
