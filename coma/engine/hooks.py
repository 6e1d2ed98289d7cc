"""Training hooks."""
import math
import os
import os.path as osp
import shutil
from typing import Dict, List, Optional

from mmengine.hooks import CheckpointHook, Hook, RuntimeInfoHook
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


def _local_rng_state() -> Dict:
    """This process's Python, numpy, torch (and CUDA) random states, as plain tensors, ints and tuples
    (loadable with ``weights_only=True``)."""
    import random

    import numpy as np
    import torch
    np_state = np.random.get_state(legacy=False)
    return dict(
        python=random.getstate(),
        numpy=dict(key=torch.from_numpy(np_state['state']['key'].astype(np.int64)),
                   pos=int(np_state['state']['pos']), has_gauss=int(np_state['has_gauss']),
                   gauss=float(np_state['gauss'])),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])


def rank_seed(seed: int, rank: int) -> int:
    """The main-process seed of ``rank``: ``seed`` itself on rank 0, a hash of both on the others
    (never another run's ``seed + k``)."""
    if rank == 0:
        return seed
    import hashlib
    return int.from_bytes(hashlib.sha256(f'{seed}/rank{rank}'.encode()).digest()[:4], 'little')


def seed_worker(worker_id: int) -> None:
    """A data-loader ``worker_init_fn``: seeds the worker's Python and numpy generators from the seed torch
    gave it (``base_seed + worker_id``, with ``base_seed`` drawn from the main process's generator each
    time the workers start). mmengine's default seeds every start of a worker alike, so each epoch of
    non-persistent workers would repeat the previous epoch's augmentations."""
    import random

    import numpy as np
    import torch
    seed = torch.initial_seed() % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)


def _checkpoint_due(hook: Optional[CheckpointHook], runner, by_epoch: bool) -> bool:
    """Whether mmengine's ``CheckpointHook`` ``hook`` saves at the end of this iteration (``by_epoch=False``)
    or epoch (``by_epoch=True``): the same rules as its ``after_train_iter`` / ``after_train_epoch``."""
    if hook is None or hook.by_epoch != by_epoch:
        return False
    if by_epoch:
        return (hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                or (hook.save_last and hook.is_last_train_epoch(runner)))
    return (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
            or (hook.save_last and hook.is_last_train_iter(runner)))


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Per-rank random streams in the main process, saved in checkpoints for every rank and restored
    on resume.

    Ranks: rank 0 keeps the stream the config's ``randomness.seed`` started; every other rank is
    re-seeded at the start of training from a hash of the seed and its rank (:func:`rank_seed`), so
    mixup/cutmix, random erasing and drop path differ between GPUs while a one-process run is unchanged.
    The sampler keeps the config's seed on every rank (ranks must share one permutation to split it).
    The train loader's workers are seeded by :func:`seed_worker` (replacing mmengine's default), so
    their streams follow the main process's: new on every epoch, different per rank.

    Checkpoints: where mmengine's ``CheckpointHook`` is about to save, every rank's Python, numpy and
    torch (and CUDA) states are gathered and written to the checkpoint as ``rng_state['ranks']``
    (rank 0's also at the top level, as a single-process checkpoint has them). On resume each rank
    restores its own, just before the loader's iterator is made (at the first epoch of an
    epoch-based loop, after the skipped batches of an iteration-based one); a checkpoint written by
    another number of ranks restores none and says so. Validation during training does not move the
    training streams (they are set back after it).

    Conditions for an exact resume: a fixed ``randomness.seed`` (with ``seed=None`` mmengine draws a new
    one), and in an epoch-based loop ``persistent_workers=False`` for the train loader (persistent
    workers' streams cannot be rebuilt by a new process; this hook warns). Mask R-CNN, UperNet and the
    ImageNet loops resume exactly after a kill (tested). The states are plain tensors and tuples of
    ints, so checkpoints stay loadable with ``weights_only=True``.

    Args:
        rank_streams: re-seed ranks > 0 as above (False: every rank draws rank 0's numbers).
    """
    priority = 'LOW'  # before CheckpointHook (VERY_LOW): the states are gathered before it saves
    KEY = 'rng_state'

    def __init__(self, rank_streams: bool = True) -> None:
        self.rank_streams = rank_streams
        self._pending: Optional[Dict] = None
        self._gathered: Optional[List[Dict]] = None
        self._outside_val: Optional[Dict] = None
        self._training = False
        self._saver: Optional[CheckpointHook] = None  # the run's CheckpointHook, found at the start

    def before_train(self, runner) -> None:
        from mmengine.dist import get_rank
        from mmengine.runner import set_random_seed
        self._training = True
        self._saver = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        loader = runner.train_dataloader
        if _epoch_based(runner) and loader.num_workers > 0 and _is_mmengine_worker_init(loader.worker_init_fn):
            loader.worker_init_fn = seed_worker  # epoch-based loops start the workers anew each epoch
        if self._pending is None and getattr(loader, 'persistent_workers', False) and _epoch_based(runner):
            runner.logger.warning('RNGStateHook: the train loader has persistent_workers=True; a resumed '
                                  'run restarts its workers\' random streams (set it to False for an exact '
                                  'resume)')
        if self.rank_streams and get_rank() > 0 and self._pending is None:
            set_random_seed(rank_seed(runner.seed, get_rank()))

    # -- saving ---------------------------------------------------------------------------------------

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if _checkpoint_due(self._saver, runner, by_epoch=False):
            self.gather()

    def after_train_epoch(self, runner) -> None:
        if _checkpoint_due(self._saver, runner, by_epoch=True):
            self.gather()

    def gather(self) -> None:
        """Collects every rank's states (a collective: all ranks call it at the same point)."""
        from mmengine.dist import all_gather_object, get_world_size
        state = _local_rng_state()
        self._gathered = all_gather_object(state) if get_world_size() > 1 else [state]

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        import torch
        state = _local_rng_state()
        ranks = self._gathered
        # the states gathered last are this save's while rank 0 has drawn nothing since (validation is
        # set back, so a best checkpoint after it takes them too); otherwise only rank 0's are known
        if not (ranks and torch.equal(ranks[0]['torch'], state['torch']) and ranks[0]['python'] == state['python']):
            ranks = [state]
        checkpoint[self.KEY] = dict(state, ranks=ranks)

    # -- restoring ------------------------------------------------------------------------------------

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        from mmengine.dist import get_rank, get_world_size
        if not getattr(runner, '_resume', True):
            return  # load_from: weights only, the run keeps its own random streams
        state = checkpoint.get(self.KEY)
        if state is None:
            runner.logger.warning('RNGStateHook: the checkpoint holds no random states; the resumed run '
                                  'draws new random numbers (weights will differ from an uninterrupted run)')
            return
        ranks = state.get('ranks') or [{k: v for k, v in state.items() if k != 'ranks'}]
        if len(ranks) != get_world_size():
            runner.logger.warning(f'RNGStateHook: the checkpoint holds the random states of {len(ranks)} '
                                  f'rank(s), this run has {get_world_size()}; new streams are drawn')
            return
        self._pending = ranks[get_rank()]

    def before_train_epoch(self, runner) -> None:
        if self._pending is not None and _epoch_based(runner):
            self.restore(self._pending)
            self._pending = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pending is not None:
            self.restore(self._pending)
            self._pending = None

    def after_train(self, runner) -> None:
        self._training = False

    def before_val_epoch(self, runner) -> None:
        if self._training:
            self._outside_val = _local_rng_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._outside_val is not None:
            self.restore(self._outside_val)
            self._outside_val = None

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


def _epoch_based(runner) -> bool:
    from mmengine.runner import EpochBasedTrainLoop
    return isinstance(getattr(runner, '_train_loop', None), EpochBasedTrainLoop)


def _is_mmengine_worker_init(fn) -> bool:
    """Whether ``fn`` is mmengine's default ``worker_init_fn`` (a partial of it), or none."""
    from mmengine.dataset import worker_init_fn
    return fn is None or getattr(fn, 'func', fn) is worker_init_fn


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


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` whose checkpoints are never left half-written.

    Each checkpoint is written to ``<name>.tmp``, flushed to disk and renamed (an atomic step on one
    file system); ``last_checkpoint`` is replaced the same way; checkpoints beyond ``max_keep_ckpts``
    are removed only after the new one is in place (mmengine removes them first). A kill at any moment
    therefore leaves ``last_checkpoint`` naming a complete file, which ``--resume`` picks. Other storage
    backends (``backend_args``) are written as mmengine writes them. Arguments: ``CheckpointHook``'s.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        from mmengine.dist import is_main_process
        from mmengine.fileio import LocalBackend
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename + '.tmp', self.file_client_args,
                               save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
                               meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        _replace_durably(self.last_ckpt + '.tmp', self.last_ckpt)
        last = osp.join(runner.work_dir, 'last_checkpoint')
        with open(last + '.tmp', 'w') as f:
            f.write(self.last_ckpt)
        _replace_durably(last + '.tmp', last)
        if outdated is not None:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(outdated))
            if osp.isfile(path):
                os.remove(path)
            elif osp.isdir(path):
                shutil.rmtree(path)


def _replace_durably(src: str, dst: str) -> None:
    """Flushes ``src`` to disk and renames it to ``dst`` (atomic on one file system)."""
    fd = os.open(src, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(src, dst)
