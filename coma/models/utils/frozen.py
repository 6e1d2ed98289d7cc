"""The frozen evaluation model M_{t-1}: a parameter-free copy and its update rule.

Its weights are stored as *buffers*: they are saved in and restored from checkpoints with the rest
of the model, follow ``.to(device)``, get no gradient, and are in no optimizer parameter group
whatever optimizer constructor a config uses.
"""
import copy
from typing import List

import torch
import torch.nn as nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters are buffers, in eval mode.

    Args:
        module: the adaptive model (or a part of it).

    Returns:
        The copy; its ``parameters()`` are empty.
    """
    frozen = copy.deepcopy(module)
    for sub in frozen.modules():
        for name, param in list(sub._parameters.items()):
            del sub._parameters[name]
            sub.register_buffer(name, None if param is None else param.detach().clone())
    frozen.eval()
    frozen.requires_grad_(False)
    return frozen


@torch.no_grad()
def momentum_update(frozen: nn.Module, online: nn.Module, momentum: float) -> None:
    """``theta' <- m * theta' + (1 - m) * theta`` for every parameter of ``online``.

    With ``momentum == 0`` the weights are copied exactly.

    Args:
        frozen: made by :func:`frozen_copy` from a module shaped like ``online``.
        online: the adaptive model.
        momentum: m in [0, 1).
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f'momentum must be in [0, 1), got {momentum}')
    names, sources = zip(*((n, p.detach()) for n, p in online.named_parameters()))
    targets: List[torch.Tensor] = [frozen.get_buffer(n) for n in names]
    if momentum == 0.0:
        torch._foreach_copy_(targets, list(sources))
    else:
        torch._foreach_lerp_(targets, list(sources), 1.0 - momentum)
