from .image_folder import ImageFolder
from .transforms import LoadImage, PackInputs, RandomHorizontalFlip, RandomResizedCrop, ResizeCenterCrop

__all__ = ['ImageFolder', 'LoadImage', 'PackInputs', 'RandomHorizontalFlip', 'RandomResizedCrop',
           'ResizeCenterCrop']
