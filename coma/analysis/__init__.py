"""Measuring models: complexity (params, MACs, ATen op counts), frozen-feature probes, the
pre-training efficiency study and the demo report readers."""
from .complexity import OpCount, count_aten_ops, count_flops, count_params, sdpa_flop_jit

__all__ = ['OpCount', 'count_aten_ops', 'count_flops', 'count_params', 'sdpa_flop_jit']
