from . import timm_models  # noqa: F401  (registers the timm entry points)
from .algorithms import MAE, CoMA, CoMAAlternate
from .backbones import DyViT
from .backbones.vit import ViT
from .classifiers import ImageClassifier
from .heads import LatentPredictionHead, PixelReconstructionHead
from .losses import LatentPredictionLoss, PixelReconstructionLoss
from .necks.decoder import CoMADecoder
from .registry import register_models

register_models([DyViT], downstream=True)
register_models([ViT, CoMADecoder, MAE, CoMA, CoMAAlternate, ImageClassifier, PixelReconstructionHead, LatentPredictionHead,
                 PixelReconstructionLoss, LatentPredictionLoss])

__all__ = ['DyViT', 'ViT', 'CoMADecoder', 'MAE', 'CoMA', 'ImageClassifier']
