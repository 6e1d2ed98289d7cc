"""Mixed precision that works on every device: ``type='AutoAmpOptimWrapper'`` in configs.

mmengine's ``AmpOptimWrapper`` asserts that a GPU is present. This factory returns it on CUDA
(float16 with dynamic loss scaling, or bfloat16), and on CPU an ``OptimWrapper`` that autocasts to
bfloat16, so an AMP config runs on a laptop without ``--cfg-options``.
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


def AutoAmpOptimWrapper(optimizer, dtype: Optional[str] = None, loss_scale='dynamic', **kwargs) -> OptimWrapper:
    """mmengine's ``AmpOptimWrapper`` on CUDA, :class:`CPUAutocastOptimWrapper` elsewhere.

    Args:
        optimizer: the built optimizer.
        dtype: ``'float16'`` or ``'bfloat16'`` on CUDA (default float16); CPU always uses bfloat16.
        loss_scale: CUDA float16 loss scaling, as in ``AmpOptimWrapper``.
        **kwargs: the rest of the ``OptimWrapper`` arguments.

    Returns:
        The optimizer wrapper.
    """
    if torch.cuda.is_available():
        return AmpOptimWrapper(optimizer=optimizer, dtype=dtype or 'float16', loss_scale=loss_scale, **kwargs)
    return CPUAutocastOptimWrapper(optimizer=optimizer, dtype='bfloat16', **kwargs)


OPTIM_WRAPPERS.register_module(name='AutoAmpOptimWrapper', module=AutoAmpOptimWrapper)
