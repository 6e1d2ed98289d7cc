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

    With ``ann_file`` (mmpretrain's format: one ``relative/path.JPEG label`` line per image, or just
    the path for unlabelled images; :func:`write_annotation_list` makes it), the folder is not listed:
    ImageNet's 1.28M files are then read from one file on every rank at start-up.

    Args:
        data_root: dataset root, e.g. ``data/imagenet``.
        data_prefix: ``dict(img_path='train')``.
        ann_file: the annotation list, relative to ``data_root`` (``''``: list the folder).
        classes: class folder names in label order; None takes the sorted sub-folders (without
            ``ann_file``) or the class folder of the first image of each label (with it).
        **kwargs: the rest of :class:`mmengine.dataset.BaseDataset`'s arguments.

    Raises:
        FileNotFoundError: the folder is missing or holds no image, naming it.
        ValueError: a line of ``ann_file`` is not ``path [label]``, naming the file and line.
    """

    def __init__(self, data_root: str = '', data_prefix: Optional[Dict] = None, ann_file: str = '',
                 classes: Optional[Sequence[str]] = None, **kwargs) -> None:
        self._classes = list(classes) if classes is not None else None
        super().__init__(data_root=data_root, data_prefix=data_prefix or dict(img_path=''), ann_file=ann_file,
                         **kwargs)

    def load_data_list(self) -> List[Dict]:
        if self.ann_file:
            return self._read_annotation_list()
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

    def _read_annotation_list(self) -> List[Dict]:
        root = self.data_prefix['img_path']
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'ImageFolder: annotation list {self.ann_file} does not exist')
        data, classes = [], {}
        with open(self.ann_file) as f:
            for number, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
                    raise ValueError(f'ImageFolder: {self.ann_file}:{number}: expected "path [label]", got {line!r}')
                item = dict(img_path=osp.join(root, parts[0]))
                if len(parts) == 2:
                    item['gt_label'] = int(parts[1])
                    classes.setdefault(item['gt_label'], osp.dirname(parts[0]))
                data.append(item)
        if not data:
            raise FileNotFoundError(f'ImageFolder: {self.ann_file} lists no image')
        names = self._classes if self._classes is not None else [classes[k] for k in sorted(classes)]
        self._metainfo['classes'] = tuple(names)
        return data


def write_annotation_list(folder: str, out: str) -> int:
    """Lists ``folder`` (``<class>/<image>`` or flat) once into ``out``, in :class:`ImageFolder`'s
    order and labels, for ``ImageFolder(ann_file=...)``. Returns the number of images."""
    dataset = ImageFolder(data_root=folder, lazy_init=True)
    data = dataset.load_data_list()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        for item in data:
            path = osp.relpath(item['img_path'], folder)
            f.write(f'{path} {item["gt_label"]}\n' if 'gt_label' in item else f'{path}\n')
    return len(data)
