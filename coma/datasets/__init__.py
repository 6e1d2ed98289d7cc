from .image_folder import ImageFolder
from .transforms import (CheckSegLabels, LoadImage, PackInputs, RandomHorizontalFlip, RandomResizedCrop,
                         ResizeCenterCrop, TimmRandAugment)

__all__ = ['CheckSegLabels', 'ImageFolder', 'LoadImage', 'PackInputs', 'RandomHorizontalFlip', 'RandomResizedCrop',
           'ResizeCenterCrop',
           'TimmRandAugment']
