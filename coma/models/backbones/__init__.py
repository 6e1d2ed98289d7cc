from .dyvit import ARCH_SETTINGS, DyViT

__all__ = ['ARCH_SETTINGS', 'DyViT']
