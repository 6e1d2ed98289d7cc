from . import timm_models  # noqa: F401  (registers the timm entry points)
from .algorithms import MAE, CoMA
from .backbones import DyViT
from .backbones.vit import ViT
from .classifiers import ImageClassifier
from .necks.decoder import CoMADecoder
from .registry import register_models

register_models([DyViT], downstream=True)
register_models([ViT, CoMADecoder, MAE, CoMA, ImageClassifier])

__all__ = ['DyViT', 'ViT', 'CoMADecoder', 'MAE', 'CoMA', 'ImageClassifier']
