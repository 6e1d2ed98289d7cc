from .image_folder import ImageFolder, write_annotation_list
from .transforms import (CheckSegLabels, LoadImage, PackInputs, RandomHorizontalFlip, RandomResizedCrop,
                         ResizeCenterCrop, TimmRandAugment)

__all__ = ['CheckSegLabels', 'ImageFolder', 'LoadImage', 'PackInputs', 'RandomHorizontalFlip', 'RandomResizedCrop',
           'ResizeCenterCrop',
           'TimmRandAugment', 'write_annotation_list']
