"""Layer-wise learning-rate decay for hierarchical (and plain) backbones.

``constructor='LayerDecayOptimWrapperConstructor'`` with ``paramwise_cfg=dict(layer_decay_rate=r)``
in an ``optim_wrapper`` config. It is registered in mmengine's root registry, which mmdet's and
mmseg's registries search as their parent.

* The backbone says which layer a parameter belongs to (``backbone.get_layer_id(name)``: stem 0,
  blocks 1..D in order); everything outside the backbone (neck, heads) is layer
  ``num_layers = D + 1``.
* lr scale = ``r ** (num_layers - layer_id)``, times ``backbone_lr_mult`` (default 1.0) for the
  backbone's parameters: a smaller backbone lr lets new heads learn at full speed while pre-trained
  features move little.
* No weight decay on what the modules' ``no_weight_decay()`` lists (:func:`no_weight_decay_names`):
  norms, biases, position tables, gates and tokens. With ``layer_decay_rate=1`` (the default) this is
  the plain AdamW grouping the pre-training configs use.
"""
from typing import Dict, List, Optional, Set, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

def no_weight_decay_names(model: nn.Module) -> Set[str]:
    """Names of ``model``'s parameters without weight decay: 1-D ones (norms, biases) and those that
    any submodule lists in its ``no_weight_decay()`` (timm's convention; DyViT: the relative-position
    tables and gates; the decoder: its mask token). The modules are the one source of the rule."""
    names = {name for name, p in model.named_parameters() if p.ndim <= 1}
    for prefix, module in model.named_modules():
        listed = getattr(module, 'no_weight_decay', None)
        if callable(listed):
            names |= {f'{prefix}.{n}' if prefix else n for n in listed()}
    return names


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, 'module') and isinstance(module.module, nn.Module) else module


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Builds parameter groups with layer-wise lr decay; see the module docstring.

    ``paramwise_cfg`` keys: ``layer_decay_rate`` (float, default 1.0), ``backbone_lr_mult`` (float,
    default 1.0: multiplies the lr of every backbone parameter) and ``backbone_prefix`` (default
    ``'backbone.'``).
    """
    KEYS = ('layer_decay_rate', 'backbone_lr_mult', 'backbone_prefix')

    def __init__(self, optim_wrapper_cfg: Dict, paramwise_cfg: Optional[Dict] = None) -> None:
        # never empty: mmengine skips add_params (and so the grouping) for an empty paramwise_cfg
        unknown = set(paramwise_cfg or {}) - set(self.KEYS)
        if unknown:
            raise KeyError(f'LayerDecayOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(unknown)}; '
                           f'allowed: {list(self.KEYS)}')
        super().__init__(optim_wrapper_cfg, dict(dict(layer_decay_rate=1.0), **(paramwise_cfg or {})))

    #: optimizers that get ``fused=True`` when every trained parameter is on a GPU (one kernel per step
    #: for all parameters; the step count stays on the device, so no step reads it back)
    FUSED = ('Adam', 'AdamW')

    def __call__(self, model: nn.Module):
        cfg = self.optimizer_cfg
        params = [p for p in model.parameters() if p.requires_grad]
        if (cfg.get('type') in self.FUSED and 'fused' not in cfg and 'foreach' not in cfg and params
                and all(p.is_cuda for p in params)):
            self.optimizer_cfg = dict(cfg, fused=True)
        try:
            return super().__call__(model)
        finally:
            self.optimizer_cfg = cfg

    def add_params(self, params: List[Dict], module: nn.Module, prefix: str = '', is_dcn_module=None) -> None:
        rate = float(self.paramwise_cfg.get('layer_decay_rate', 1.0))
        backbone_mult = float(self.paramwise_cfg.get('backbone_lr_mult', 1.0))
        bb_prefix = self.paramwise_cfg.get('backbone_prefix', 'backbone.')
        module = _unwrap(module)
        backbone = module.get_submodule(bb_prefix.rstrip('.')) if bb_prefix else module
        if not hasattr(backbone, 'get_layer_id'):
            raise TypeError(f'LayerDecayOptimWrapperConstructor: {type(backbone).__name__} has no get_layer_id')
        num_layers = backbone.num_layers
        no_decay = no_weight_decay_names(module)
        groups: Dict[Tuple[int, bool, bool], Dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            in_backbone = name.startswith(bb_prefix)
            layer = backbone.get_layer_id(name[len(bb_prefix):]) if in_backbone else num_layers
            skip_wd = name in no_decay
            scale = rate ** (num_layers - layer) * (backbone_mult if in_backbone else 1.0)
            # backbone and head parameters of the last layer share a group unless their lrs differ
            # (so the groups, and resumed optimizer states, are as before when backbone_lr_mult is 1)
            key = (layer, skip_wd, in_backbone and backbone_mult != 1.0)
            group = groups.setdefault(key, dict(
                params=[], param_names=[], layer_id=layer, lr_scale=scale,
                lr=self.base_lr * scale, weight_decay=0.0 if skip_wd else self.base_wd))
            group['params'].append(param)
            group['param_names'].append(name)
        params.extend(groups[k] for k in sorted(groups))
        print_log(f'layer decay {rate}, backbone lr x{backbone_mult}: {num_layers + 1} layers, {len(groups)} '
                  'parameter groups', logger='current')
