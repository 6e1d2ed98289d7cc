"""Optimizers that mmengine lacks, taken from timm: ``type='LARS'`` (MAE's linear-probing optimizer)."""
from mmengine.registry import OPTIMIZERS
from timm.optim import Lars

if 'LARS' not in OPTIMIZERS.module_dict:
    OPTIMIZERS.register_module(name='LARS', module=Lars)
