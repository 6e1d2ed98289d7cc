from .hooks import AtomicCheckpointHook, FiniteLossHook, MaskEpochHook, RNGStateHook
from .launch import CPUDistributedDataParallel
from . import optimizers  # noqa: F401  (registers LARS)
from .layer_decay import LayerDecayOptimWrapperConstructor
from .optim_wrapper import AutoAmpOptimWrapper, AutocastOptimWrapper, CPUAutocastOptimWrapper
from .safe_load import install, safe_torch_load, trusted_checkpoints

install()

__all__ = ['AtomicCheckpointHook', 'CPUDistributedDataParallel', 'LayerDecayOptimWrapperConstructor', 'FiniteLossHook', 'MaskEpochHook', 'RNGStateHook', 'AutoAmpOptimWrapper', 'AutocastOptimWrapper', 'CPUAutocastOptimWrapper', 'safe_torch_load', 'trusted_checkpoints']
