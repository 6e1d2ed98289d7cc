"""Data transforms for the ImageNet loops (registered in mmengine's root ``TRANSFORMS``)."""
import math
import random
from typing import Dict, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.logging import print_log
from mmengine.registry import TRANSFORMS
from mmengine.structures import BaseDataElement


def _looks_complete(data: bytes) -> bool:
    """False for a JPEG without its end-of-image marker or a PNG without IEND (truncated files).

    JPEG's entropy-coded data byte-stuffs 0xFF, so 0xFFD9 near the end is the EOI marker itself.
    """
    if data[:2] == b'\xff\xd8':
        return b'\xff\xd9' in data[-4096:]
    if data[:8] == b'\x89PNG\r\n\x1a\n':
        return b'IEND' in data[-64:]
    return True


@TRANSFORMS.register_module()
class LoadImage(BaseTransform):
    """Reads and decodes ``results['img_path']`` (BGR, uint8), strictly.

    A truncated or undecodable file raises ``IOError`` naming it; with ``skip_corrupt=True`` it is
    logged with a running count and the sample is dropped (the dataset then draws another).

    Args:
        skip_corrupt: skip corrupt files instead of raising.
    """
    skipped = 0

    def __init__(self, skip_corrupt: bool = False) -> None:
        self.skip_corrupt = skip_corrupt

    def transform(self, results: Dict) -> Optional[Dict]:
        path = results['img_path']
        try:
            data = get(path)
            img = mmcv.imfrombytes(data, flag='color', backend='cv2') if _looks_complete(data) else None
            if img is None:
                raise IOError('truncated or undecodable image data')
        except Exception as err:  # noqa: BLE001  (any read or decode failure names the file)
            if not self.skip_corrupt:
                raise IOError(f'cannot load image {path}: {err}. Fix or remove the file, or set '
                              f'skip_corrupt=True on LoadImage to skip such files.') from err
            LoadImage.skipped += 1
            print_log(f'skipped corrupt image {path} ({err}); {LoadImage.skipped} skipped so far in this worker',
                      logger='current', level=30)
            return None
        results['img'] = img
        results['img_shape'] = results['ori_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Inception-style random crop of area ``scale`` and aspect ``ratio``, resized to ``size``.

    Args:
        size: output side (square) or ``(h, w)``.
        scale: range of the crop's area fraction.
        ratio: range of the crop's aspect ratio (w/h), sampled log-uniformly.
        interpolation: cv2 interpolation name.
    """

    def __init__(self, size, scale: Tuple[float, float] = (0.2, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3), interpolation: str = 'bicubic') -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio, self.interpolation = scale, ratio, interpolation

    def _params(self, h: int, w: int) -> Tuple[int, int, int, int]:
        area = h * w
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
        side = min(h, w)  # fallback: central square crop
        return (h - side) // 2, (w - side) // 2, side, side

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        y, x, ch, cw = self._params(*img.shape[:2])
        results['img'] = mmcv.imresize(img[y:y + ch, x:x + cw], self.size[::-1], interpolation=self.interpolation)
        results['img_shape'] = self.size
        return results


@TRANSFORMS.register_module()
class ResizeCenterCrop(BaseTransform):
    """Resizes the short side to ``size / crop_pct`` and takes the central ``size`` crop (evaluation).

    Args:
        size: output side.
        crop_pct: crop fraction (0.875 as timm).
    """

    def __init__(self, size: int, crop_pct: float = 0.875) -> None:
        self.size, self.crop_pct = size, crop_pct

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        h, w = img.shape[:2]
        short = int(round(self.size / self.crop_pct))
        nh, nw = (short, max(self.size, round(w * short / h))) if h <= w else (max(self.size, round(h * short / w)), short)
        img = mmcv.imresize(img, (nw, nh), interpolation='bicubic')
        y, x = (nh - self.size) // 2, (nw - self.size) // 2
        results['img'] = img[y:y + self.size, x:x + self.size]
        results['img_shape'] = (self.size, self.size)
        return results


@TRANSFORMS.register_module()
class RandomHorizontalFlip(BaseTransform):
    """Flips left-right with probability ``prob``."""

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def transform(self, results: Dict) -> Dict:
        if random.random() < self.prob:
            results['img'] = np.ascontiguousarray(results['img'][:, ::-1])
        return results


@TRANSFORMS.register_module()
class PackInputs(BaseTransform):
    """Packs ``img`` into a CHW uint8 tensor and the label and meta into a data sample.

    Args:
        meta_keys: keys copied into the data sample's metainfo.
    """

    def __init__(self, meta_keys: Sequence[str] = ('img_path', 'ori_shape', 'img_shape', 'sample_idx')) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: Dict) -> Dict:
        img = results['img']
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.as_tensor(results['gt_label'], dtype=torch.long).view(-1)
        return dict(inputs=torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), data_samples=sample)


@TRANSFORMS.register_module()
class CheckSegLabels(BaseTransform):
    """Fails with the file's name when a segmentation map holds ids outside ``[0, num_classes)``.

    Place it after ``LoadAnnotations`` (after ``reduce_zero_label``); ``ignore_index`` passes.

    Args:
        num_classes: number of classes.
        ignore_index: the id that marks ignored pixels.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def transform(self, results: Dict) -> Dict:
        seg = results['gt_seg_map']
        ids = np.unique(seg)
        bad = [int(i) for i in ids if i != self.ignore_index and not 0 <= i < self.num_classes]
        if bad:
            raise ValueError(f"label map {results.get('seg_map_path')} has ids {bad} outside [0, {self.num_classes}) "
                             f'(after reduce_zero_label={results.get("reduce_zero_label")}); ignore_index is '
                             f'{self.ignore_index}')
        return results


@TRANSFORMS.register_module()
class TimmRandAugment(BaseTransform):
    """timm's RandAugment (``timm.data.rand_augment_transform``) on a BGR uint8 image.

    Args:
        config_str: timm's policy string, e.g. ``'rand-m9-mstd0.5-inc1'`` (MAE fine-tuning: 9 / 0.5).
        img_size: the crop side, for timm's translate range (45% of it).
        img_mean: RGB fill colour of the geometric ops (ImageNet mean).
    """

    def __init__(self, config_str: str = 'rand-m9-mstd0.5-inc1', img_size: int = 224,
                 img_mean: Tuple[int, int, int] = (124, 116, 104)) -> None:
        from timm.data import rand_augment_transform
        hparams = dict(translate_const=int(img_size * 0.45), img_mean=tuple(int(v) for v in img_mean))
        try:
            self.policy = rand_augment_transform(config_str, hparams)
        except (AssertionError, ValueError, KeyError) as err:
            raise ValueError(f"TimmRandAugment: config_str '{config_str}' is not a timm RandAugment policy "
                             f"(e.g. 'rand-m9-mstd0.5-inc1'): {err!r}") from err
        self.config_str = config_str

    def transform(self, results: Dict) -> Dict:
        from PIL import Image
        rgb = Image.fromarray(np.ascontiguousarray(results['img'][..., ::-1]))
        results['img'] = np.ascontiguousarray(np.asarray(self.policy(rgb))[..., ::-1])
        return results
