from .cls_head import LinearClsHead
from .reconstruction_heads import LatentPredictionHead, PixelReconstructionHead

__all__ = ['LinearClsHead', 'PixelReconstructionHead', 'LatentPredictionHead']
