"""CoMA: complementary masked pre-training and the DyViT backbone for OpenMMLab and timm.

``import coma`` (or ``custom_imports=dict(imports=['coma'])`` in a config) registers every module
and installs the safe checkpoint loader; it has no other side effect.
"""
from . import datasets  # noqa: F401  (registration)
from . import evaluation  # noqa: F401  (registration)
from . import engine  # noqa: F401  (safe checkpoint loading, optimizer wrappers, hooks)
from . import models  # noqa: F401  (registration)

__version__ = '0.1.0'
