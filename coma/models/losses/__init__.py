from .reconstruction import LatentPredictionLoss, PixelReconstructionLoss

__all__ = ['PixelReconstructionLoss', 'LatentPredictionLoss']
