"""Training hooks."""
import math
import os.path as osp
from typing import Dict, List, Optional

from mmengine.hooks import Hook, RuntimeInfoHook
from mmengine.registry import HOOKS


def _logger_interval(runner) -> int:
    """The ``LoggerHook``'s interval (iterations between log lines), 1 without one."""
    from mmengine.hooks import LoggerHook
    return next((h.interval for h in runner.hooks if isinstance(h, LoggerHook)), 1)


def _reads_now(runner, batch_idx: int) -> bool:
    """Whether this iteration is one at which values kept on the device are read: the logger's
    interval, the end of an epoch and the last iteration (where ``LoggerHook`` writes a line)."""
    loader = runner.train_dataloader
    size = len(loader) if hasattr(loader, '__len__') else 0
    return ((batch_idx + 1) % _logger_interval(runner) == 0 or batch_idx + 1 == size
            or runner.iter + 1 >= runner.max_iters)


def _scalars(outputs: Optional[Dict]) -> Dict:
    """The detached one-element values of a ``train_step`` output (on whatever device they are)."""
    return {k: (v.detach() if hasattr(v, 'detach') else v) for k, v in (outputs or {}).items()}


def _to_host(values: List) -> List[float]:
    """Tensors and numbers to floats, with one device-to-host copy for all the tensors."""
    import torch
    tensors = [v for v in values if hasattr(v, 'detach')]
    host = iter(torch.stack([t.float().reshape(()) for t in tensors]).cpu().unbind() if tensors else ())
    return [float(next(host)) if hasattr(v, 'detach') else float(v) for v in values]


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stops training at a NaN or inf loss, naming the first iteration that had one and the loss.

    The losses stay on the device and are checked where they are read anyway (at the logger's
    interval, the end of an epoch, the last iteration) and before any checkpoint is written, with
    one device-to-host copy for all iterations since the last check: no iteration waits for the
    device. So no checkpoint with weights from a non-finite step is written; the checkpoints already
    on disk are kept.
    """
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: List = []  # (iteration, epoch, {key: loss}) since the last check

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[Dict] = None) -> None:
        losses = {k: v for k, v in _scalars(outputs).items() if 'loss' in k}
        if losses:
            self._pending.append((runner.iter + 1, runner.epoch + 1, losses))
        if _reads_now(runner, batch_idx):
            self.check(runner)

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        self.check(runner)

    def after_train_epoch(self, runner) -> None:
        self.check(runner)

    def after_train(self, runner) -> None:
        self.check(runner)

    def check(self, runner) -> None:
        """Reads the losses kept since the last check (one copy) and raises at the first non-finite one."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        keys = [(it, ep, k) for it, ep, losses in pending for k in losses]
        values = _to_host([v for _, _, losses in pending for v in losses.values()])
        for (iteration, epoch, key), value in zip(keys, values):
            if not math.isfinite(value):
                last = osp.join(runner.work_dir, 'last_checkpoint')
                hint = open(last).read().strip() if osp.isfile(last) else 'none saved yet'
                raise FloatingPointError(
                    f'non-finite {key} = {value} at iteration {iteration} (epoch {epoch}); training stopped '
                    f'before any checkpoint of a later step was saved. Last good checkpoint: {hint}. '
                    'Lower the learning rate or check the data, then resume.')


@HOOKS.register_module()
class DeferredRuntimeInfoHook(RuntimeInfoHook):
    """mmengine's ``RuntimeInfoHook`` without a host read per iteration.

    mmengine's hook puts every ``train_step`` output into the message hub at once, which reads each
    loss from the device (``.item()``): a GPU run then waits for every step to finish before the
    next is queued. This one keeps the outputs on the device and hands them to the message hub, in
    order and with their own iteration, where they are read anyway (the logger's interval, the end
    of an epoch, the last iteration) and before a checkpoint (which stores the message hub), with one
    device-to-host copy. Logs and checkpoints are the same as mmengine's. In configs:
    ``default_hooks = dict(runtime_info=dict(type='DeferredRuntimeInfoHook'))``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: List[Dict] = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[Dict] = None) -> None:
        if outputs:
            self._pending.append(_scalars(outputs))
        if _reads_now(runner, batch_idx):
            self.flush(runner)

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        from mmengine.utils import apply_to
        if self._pending:  # the runner took the message hub's state before this hook: take it again
            self.flush(runner)
            checkpoint['message_hub'] = apply_to(runner.message_hub.state_dict(), lambda x: hasattr(x, 'cpu'),
                                                 lambda x: x.cpu())

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)
        super().after_train_epoch(runner)

    def flush(self, runner) -> None:
        """Hands the kept outputs to the message hub (one device-to-host copy)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        values = iter(_to_host([v for out in pending for v in out.values()]))
        for out in pending:
            for key in out:
                runner.message_hub.update_scalar(f'train/{key}', next(values))


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
    depend on the epoch (the ``CoMAAlternate`` variant); a model without
    ``set_epoch`` is left alone. A resumed run starts at its saved epoch, so its masks are the
    uninterrupted run's."""
    priority = 'NORMAL'

    def before_train_epoch(self, runner) -> None:
        from mmengine.model import is_model_wrapper
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if hasattr(model, 'set_epoch'):
            model.set_epoch(runner.epoch)
