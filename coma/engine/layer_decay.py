"""Layer-wise learning-rate decay for hierarchical (and plain) backbones.

``constructor='LayerDecayOptimWrapperConstructor'`` with ``paramwise_cfg=dict(layer_decay_rate=r)``
in an ``optim_wrapper`` config. It is registered in mmengine's root registry, which mmdet's and
mmseg's registries search as their parent.

* The backbone says which layer a parameter belongs to (``backbone.get_layer_id(name)``: stem 0,
  blocks 1..D in order); everything outside the backbone (neck, heads) is layer
  ``num_layers = D + 1``.
* lr scale = ``r ** (num_layers - layer_id)``.
* No weight decay on norms, biases, position tables, gates and tokens.
"""
from typing import Dict, List, Tuple

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: Substrings of parameter names that get no weight decay (besides 1-D parameters and biases).
NO_DECAY_KEYS = ('bias_table', '.gate.', 'mask_token', 'pos_embed', 'cls_token')


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """True for norms, biases, position tables, gates and tokens."""
    return param.ndim <= 1 or name.endswith('.bias') or any(k in name for k in NO_DECAY_KEYS)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, 'module') and isinstance(module.module, nn.Module) else module


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Builds parameter groups with layer-wise lr decay; see the module docstring.

    ``paramwise_cfg`` keys: ``layer_decay_rate`` (float, default 1.0) and ``backbone_prefix``
    (default ``'backbone.'``).
    """

    def add_params(self, params: List[Dict], module: nn.Module, prefix: str = '', is_dcn_module=None) -> None:
        rate = float(self.paramwise_cfg.get('layer_decay_rate', 1.0))
        bb_prefix = self.paramwise_cfg.get('backbone_prefix', 'backbone.')
        module = _unwrap(module)
        backbone = module.get_submodule(bb_prefix.rstrip('.')) if bb_prefix else module
        if not hasattr(backbone, 'get_layer_id'):
            raise TypeError(f'LayerDecayOptimWrapperConstructor: {type(backbone).__name__} has no get_layer_id')
        num_layers = backbone.num_layers
        groups: Dict[Tuple[int, bool], Dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer = backbone.get_layer_id(name[len(bb_prefix):]) if name.startswith(bb_prefix) else num_layers
            skip_wd = no_weight_decay(name, param)
            group = groups.setdefault((layer, skip_wd), dict(
                params=[], param_names=[], layer_id=layer, lr_scale=rate ** (num_layers - layer),
                lr=self.base_lr * rate ** (num_layers - layer), weight_decay=0.0 if skip_wd else self.base_wd))
            group['params'].append(param)
            group['param_names'].append(name)
        params.extend(groups[k] for k in sorted(groups))
        print_log(f'layer decay {rate}: {num_layers + 1} layers, {len(groups)} parameter groups', logger='current')
