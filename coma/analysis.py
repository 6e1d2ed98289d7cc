"""Parameter and FLOP counting with one named tool: ``mmengine.analysis.FlopAnalyzer``.

FLOPs here are multiply-accumulates, as fvcore and mmengine count them. mmengine skips
``aten::scaled_dot_product_attention``; :func:`sdpa_flop_jit` counts it as the two matmuls it
performs (``Q K^T`` and ``A V``), so fused attention is included.
"""
from typing import Any, List, Tuple

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


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
