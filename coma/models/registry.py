"""Registers our modules in mmengine's root registry, and backbones also in mmdet's and mmseg's."""
import importlib
from typing import Iterable

from mmengine.registry import MODELS


def register_models(classes: Iterable[type], downstream: bool = False) -> None:
    """Registers ``classes`` by class name in mmengine's root ``MODELS``.

    Args:
        classes: the modules.
        downstream: also register them in mmdet's and mmseg's ``MODELS`` (if installed), for
            backbones. Algorithms stay in the root only: mmseg has its own ``MAE``.
    """
    registries = [MODELS]
    if downstream:
        for package in ('mmdet', 'mmseg'):
            try:
                registries.append(importlib.import_module(f'{package}.registry').MODELS)
            except ImportError:  # that downstream package is not installed
                pass
    for registry in registries:
        for cls in classes:
            registry.register_module(module=cls, force=True)
