"""Mixed precision that works on every device: ``type='AutoAmpOptimWrapper'`` in configs.

mmengine's ``AmpOptimWrapper`` asserts that a GPU is present. This factory returns it on CUDA
(float16 with dynamic loss scaling, or bfloat16), and on CPU an ``OptimWrapper`` that autocasts to
bfloat16 (or, with ``cpu_dtype=None``, a plain float32 one), so an AMP config runs on a laptop
without ``--cfg-options``.
"""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn as nn
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under ``torch.autocast('cpu', dtype)``.

    Args:
        dtype: ``'bfloat16'`` (CPU autocast supports no float16 loss scaling).
        **kwargs: :class:`mmengine.optim.OptimWrapper` arguments.
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def AutoAmpOptimWrapper(optimizer, dtype: Optional[str] = None, loss_scale='dynamic',
                        cpu_dtype: Optional[str] = 'bfloat16', **kwargs) -> OptimWrapper:
    """mmengine's ``AmpOptimWrapper`` on CUDA; on CPU, bfloat16 autocast or plain float32.

    Args:
        optimizer: the built optimizer.
        dtype: ``'float16'`` or ``'bfloat16'`` on CUDA (default float16).
        loss_scale: CUDA float16 loss scaling, as in ``AmpOptimWrapper``.
        cpu_dtype: ``'bfloat16'`` autocasts on CPU (:class:`CPUAutocastOptimWrapper`); None trains
            in float32 there (the detection and segmentation configs: mmcv's CPU ops take float32 only).
        **kwargs: the rest of the ``OptimWrapper`` arguments.

    Returns:
        The optimizer wrapper.
    """
    if torch.cuda.is_available():
        return AmpOptimWrapper(optimizer=optimizer, dtype=dtype or 'float16', loss_scale=loss_scale, **kwargs)
    if cpu_dtype is None:
        return OptimWrapper(optimizer=optimizer, **kwargs)
    return CPUAutocastOptimWrapper(optimizer=optimizer, dtype=cpu_dtype, **kwargs)


OPTIM_WRAPPERS.register_module(name='AutoAmpOptimWrapper', module=AutoAmpOptimWrapper)
