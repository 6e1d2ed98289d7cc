from .collate import stack_collate
from .image_folder import ImageFolder, write_annotation_list
from .transforms import (CheckSegLabels, LoadImage, PackInputs, RandomHorizontalFlip, RandomResizedCrop,
                         ResizeCenterCrop, TimmRandAugment)

__all__ = ['CheckSegLabels', 'ImageFolder', 'LoadImage', 'PackInputs', 'RandomHorizontalFlip', 'RandomResizedCrop',
           'ResizeCenterCrop',
           'TimmRandAugment', 'stack_collate', 'write_annotation_list']
