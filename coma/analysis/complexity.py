"""Parameter and FLOP counting with one named tool: ``mmengine.analysis.FlopAnalyzer``.

:func:`count_aten_ops` counts the ATen operators a call dispatches (most launch one kernel on a
GPU): a deterministic proxy for launch overhead, used by the op-budget tests and the benchmarks.

FLOPs here are multiply-accumulates, as fvcore and mmengine count them. mmengine skips
``aten::scaled_dot_product_attention``; :func:`sdpa_flop_jit` counts it as the two matmuls it
performs (``Q K^T`` and ``A V``), so fused attention is included.
"""
from collections import Counter
from typing import Any, Callable, List, NamedTuple, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch.utils._python_dispatch import TorchDispatchMode


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """MACs of ``scaled_dot_product_attention(q, k, v)``: ``N*L*S*(E + Ev)`` over batch dims N."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for s in q[:-2]:
        batch *= s
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def count_flops(model: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> int:
    """Total MACs of ``model(*inputs)``, fused attention included.

    Args:
        model: the module, put in eval mode for the count.
        inputs: its positional inputs.

    Returns:
        Multiply-accumulate count.
    """
    was_training = model.training
    model.eval()
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        total = analyzer.total()
    model.train(was_training)
    return total


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


class OpCount(NamedTuple):
    """ATen operator calls of one call: ``total`` (views included), ``kernels`` (calls that compute,
    i.e. not views, which launch no kernel on a GPU) and the calls per operator."""
    total: int
    kernels: int
    per_op: Counter


#: Operators that return a view although their schema does not say so.
_UNTRACKED_VIEWS = ('aten._unsafe_view', 'aten._reshape_alias')


class _AtenCounter(TorchDispatchMode):
    """Counts every ATen operator that reaches the dispatcher below autograd."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()
        self.views = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        self.counts[name] += 1
        self.views += bool(func.is_view or name in _UNTRACKED_VIEWS)
        return func(*args, **(kwargs or {}))


def count_aten_ops(fn: Callable[[], Any]) -> OpCount:
    """ATen operator calls made by ``fn()``.

    Args:
        fn: a no-argument callable, e.g. ``lambda: model(x)``; run under ``torch.no_grad`` by the
            caller if the count should exclude autograd bookkeeping.

    Returns:
        An :class:`OpCount`.
    """
    counter = _AtenCounter()
    with counter:
        fn()
    total = sum(counter.counts.values())
    return OpCount(total, total - counter.views, counter.counts)
