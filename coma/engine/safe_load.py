"""Safe checkpoint loading for mmengine 0.10.7 on torch >= 2.6.

mmengine 0.10.7 calls ``torch.load(filename)`` without ``weights_only``. Since torch 2.6 that means
``weights_only=True``, which rejects the ``HistoryBuffer`` (and numpy arrays) that every Runner
checkpoint holds, so ``load_from``, ``--resume`` and ``mim test`` fail. Turning the check off would
let a checkpoint run arbitrary code, so instead we keep ``weights_only=True`` and allow-list
exactly the globals that mmengine checkpoints contain.

:func:`install` registers :func:`load_from_local_safe` as mmengine's loader for local paths
(``CheckpointLoader``'s extension point). It runs on ``import coma``, which configs reach through
``custom_imports``, so mmdet's and mmseg's own train/test scripts get it too.

A legacy file that needs full unpickling fails with an error that names the file and the global;
it loads only inside :func:`trusted_checkpoints` (or with ``--trust-checkpoint`` on our tools).
"""
import contextlib
import os.path as osp
import pickle
import threading
import zipfile
from typing import Any, Iterator, List, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

_state = threading.local()


def _numpy_globals() -> List[Any]:
    """numpy objects a pickled array or scalar refers to, for numpy 1.x and 2.x."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'float16', 'int64', 'int32', 'int16',
                                          'int8', 'uint8', 'bool')]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]


def _history_buffer_method(obj: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling: resolves only ``HistoryBuffer``'s methods.

    A ``HistoryBuffer`` pickles its statistics methods (``min``, ``max``, ``current``, ...) by
    reference, which pickle writes as ``getattr(HistoryBuffer, 'min')``. A general ``getattr`` would
    reach any attribute of any allowed object, so only this one use is allowed.
    """
    if obj is HistoryBuffer and callable(vars(HistoryBuffer).get(name)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def allowed_globals() -> List[Any]:
    """Exactly what mmengine Runner checkpoints pickle beyond tensors and builtins.

    ``HistoryBuffer`` holds the message hub's logged scalars as numpy arrays, and refers to its
    statistics methods through ``getattr`` (mapped to :func:`_history_buffer_method`).
    """
    return [HistoryBuffer, (_history_buffer_method, 'builtins.getattr'), *_numpy_globals()]


@contextlib.contextmanager
def trusted_checkpoints() -> Iterator[None]:
    """Explicit opt-in: checkpoints loaded inside this block are fully unpickled.

    Only use it for files from a source you trust: unpickling can run arbitrary code.
    """
    previous = getattr(_state, 'trusted', False)
    _state.trusted = True
    try:
        yield
    finally:
        _state.trusted = previous


def safe_torch_load(file: Any, map_location: Optional[Any] = None, name: Optional[str] = None) -> Any:
    """``torch.load`` with ``weights_only=True`` and the mmengine allow-list.

    Args:
        file: a path or a file-like object.
        map_location: as in :func:`torch.load`.
        name: how to name the file in errors (defaults to ``file``).

    Returns:
        The loaded object.

    Raises:
        RuntimeError: the file is truncated or not a torch checkpoint, or needs a global outside the
            allow-list (unless inside :func:`trusted_checkpoints`); the message names the file.
    """
    name = name or str(file)
    if getattr(_state, 'trusted', False):
        return torch.load(file, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'Refusing to unpickle checkpoint {name}: it needs a global outside the safe allow-list '
            f'({str(err).splitlines()[0][:300]}). If you trust this file, load it inside '
            f'coma.engine.trusted_checkpoints(), or pass --trust-checkpoint to tools/train.py or '
            f'tools/test.py.') from err
    except FileNotFoundError:
        raise
    except (EOFError, OSError, zipfile.BadZipFile, RuntimeError) as err:
        raise RuntimeError(f'Cannot read checkpoint {name}: the file is truncated or not a torch '
                           f'checkpoint ({type(err).__name__}: {err})') from err


def load_from_local_safe(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine ``CheckpointLoader`` backend for local paths (replaces ``load_from_local``)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location, name=filename)


def install() -> None:
    """Registers :func:`load_from_local_safe` for mmengine's local (prefix-less) paths."""
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safe, force=True)
