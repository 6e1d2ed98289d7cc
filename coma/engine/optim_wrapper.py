"""Mixed precision that works on every device: ``type='AutoAmpOptimWrapper'`` in configs.

mmengine's ``AmpOptimWrapper`` asserts that a GPU is present, and keeps a ``GradScaler`` even in
bfloat16, whose ``step`` reads ``found_inf`` from the device at every iteration (a host sync).
This factory returns, on CUDA, a bfloat16 :class:`AutocastOptimWrapper` without loss scaling where
the GPU supports bfloat16 (Ampere and newer), else mmengine's float16 ``AmpOptimWrapper`` with
dynamic loss scaling; and on CPU a bfloat16 :class:`AutocastOptimWrapper` (or, with
``cpu_dtype=None``, a plain float32 one), so an AMP config runs on a laptop without ``--cfg-options``.
"""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, Registry


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast`` on the model's device, no loss scaling.

    For bfloat16, whose range is float32's: nothing overflows, so nothing is scaled and no step waits
    for the device to say whether gradients were finite.

    Args:
        dtype: ``'bfloat16'`` (or ``'float16'``, unscaled: for tests and inference only).
        **kwargs: :class:`mmengine.optim.OptimWrapper` arguments.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        param = next(model.parameters(), None)
        device = param.device.type if param is not None else 'cpu'
        with super().optim_context(model), torch.autocast(device, dtype=self.cast_dtype):
            yield


#: the name this wrapper had when it autocast on the CPU only (configs may still name it)
CPUAutocastOptimWrapper = AutocastOptimWrapper
OPTIM_WRAPPERS.register_module(name='CPUAutocastOptimWrapper', module=AutocastOptimWrapper)


def AutoAmpOptimWrapper(optimizer, dtype: Optional[str] = None, loss_scale='dynamic',
                        cpu_dtype: Optional[str] = 'bfloat16', **kwargs) -> OptimWrapper:
    """Mixed precision on CUDA (bfloat16 without a scaler where supported), bfloat16 or float32 on CPU.

    Args:
        optimizer: the built optimizer.
        dtype: on CUDA, ``'bfloat16'`` (no loss scaler) or ``'float16'`` (mmengine's ``AmpOptimWrapper``
            with ``loss_scale``); None: bfloat16 where the GPU supports it, else float16.
        loss_scale: float16 loss scaling, as in ``AmpOptimWrapper``.
        cpu_dtype: ``'bfloat16'`` autocasts on CPU; None trains in float32 there (the detection and
            segmentation configs: mmcv's CPU ops take float32 only).
        **kwargs: the rest of the ``OptimWrapper`` arguments.

    Returns:
        The optimizer wrapper.
    """
    if torch.cuda.is_available():
        if dtype is None:
            dtype = 'bfloat16' if torch.cuda.is_bf16_supported() else 'float16'
        if dtype == 'bfloat16':
            return AutocastOptimWrapper(optimizer=optimizer, dtype=dtype, **kwargs)
        return AmpOptimWrapper(optimizer=optimizer, dtype=dtype, loss_scale=loss_scale, **kwargs)
    if cpu_dtype is None:
        return OptimWrapper(optimizer=optimizer, **kwargs)
    return AutocastOptimWrapper(optimizer=optimizer, dtype=cpu_dtype, **kwargs)


OPTIM_WRAPPERS.register_module(name='AutoAmpOptimWrapper', module=AutoAmpOptimWrapper)


#: The optimizer wrappers of the ``coma`` scope: an ``optim_wrapper`` with ``_scope_='coma'`` is built from
#: here first, then from mmengine's. mmdet's and mmseg's ``tools/train.py --amp`` (also under ``mim train``)
#: set ``type='AmpOptimWrapper'`` and keep the rest of the dict, so our downstream configs name this scope:
#: ``--amp`` then builds :func:`AmpOptimWrapper` below, which runs on CPU machines too.
COMA_OPTIM_WRAPPERS = Registry('optim_wrapper', parent=OPTIM_WRAPPERS, scope='coma')


@COMA_OPTIM_WRAPPERS.register_module(name='AmpOptimWrapper')
def AmpOptimWrapper_(optimizer, dtype: Optional[str] = 'float16', loss_scale='dynamic',
                     cpu_dtype: Optional[str] = None, **kwargs) -> OptimWrapper:
    """mmengine's ``AmpOptimWrapper`` (float16 with loss scaling) on CUDA, float32 on CPU: mmcv's CUDA ops
    take float16, not bfloat16, and its CPU ops take float32 only. ``dtype='bfloat16'`` and ``cpu_dtype``
    as in :func:`AutoAmpOptimWrapper`."""
    return AutoAmpOptimWrapper(optimizer, dtype=dtype, loss_scale=loss_scale, cpu_dtype=cpu_dtype, **kwargs)
