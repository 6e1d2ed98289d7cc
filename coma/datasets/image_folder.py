"""ImageNet-style image folders for pre-training, fine-tuning and linear probing."""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.registry import DATASETS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


@DATASETS.register_module()
class ImageFolder(BaseDataset):
    """``data_root/<img_path>/<class>/*.JPEG`` (labelled) or a flat folder of images (unlabelled).

    Args:
        data_root: dataset root, e.g. ``data/imagenet``.
        data_prefix: ``dict(img_path='train')``.
        classes: class folder names in label order; None takes the sorted sub-folders.
        **kwargs: the rest of :class:`mmengine.dataset.BaseDataset`'s arguments.

    Raises:
        FileNotFoundError: the folder is missing or holds no image, naming it.
    """

    def __init__(self, data_root: str = '', data_prefix: Optional[Dict] = None,
                 classes: Optional[Sequence[str]] = None, **kwargs) -> None:
        self._classes = list(classes) if classes is not None else None
        super().__init__(data_root=data_root, data_prefix=data_prefix or dict(img_path=''), **kwargs)

    def load_data_list(self) -> List[Dict]:
        root = self.data_prefix['img_path']
        if not osp.isdir(root):
            raise FileNotFoundError(f'ImageFolder: image folder {root} does not exist')
        subdirs = sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))
        classes = self._classes if self._classes is not None else subdirs
        data = []
        if classes:
            for label, name in enumerate(classes):
                folder = osp.join(root, name)
                if not osp.isdir(folder):
                    raise FileNotFoundError(f'ImageFolder: class folder {folder} does not exist')
                data += [dict(img_path=osp.join(folder, f), gt_label=label)
                         for f in sorted(os.listdir(folder)) if f.lower().endswith(IMG_EXTENSIONS)]
        else:
            data = [dict(img_path=osp.join(root, f)) for f in sorted(os.listdir(root))
                    if f.lower().endswith(IMG_EXTENSIONS)]
        if not data:
            raise FileNotFoundError(f'ImageFolder: no images ({", ".join(IMG_EXTENSIONS)}) under {root}')
        self._metainfo['classes'] = tuple(classes)
        return data
