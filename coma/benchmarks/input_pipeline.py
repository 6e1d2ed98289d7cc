"""The pre-training input pipeline on ImageNet-sized JPEGs, beside timm's, in one process.

Each row decodes, crops (RandomResizedCrop 224, scale 0.2-1, bicubic), flips and batches the same
files in the calling process (``num_workers=0``, one thread for OpenCV and torch): the rate one data
worker reaches. Ours: ``ImageFolder`` + the pre-training config's pipeline + mmengine's ``default_collate``. timm:
``ImageDataset`` + ``create_transform(..., use_prefetcher=True)`` (uint8 out, normalised later on the
device, as ours) + ``fast_collate``. Rows alternate, so both see the same machine state; the median of
the rounds is reported with every round.
"""
import json
import os
import os.path as osp
import statistics
import time
from typing import Dict, List

import cv2
import numpy as np
import torch

from ..datasets.demo import CLASS_PHOTOS, photo


def make_jpegs(folder: str, per_class: int = 40, size=(500, 375), seed: int = 0) -> int:
    """``folder/<class>/*.JPEG``: crops of the bundled photos at ImageNet's typical size (500 x 375),
    random scale, flip and brightness, JPEG quality 90. Returns the number of files."""
    rng = np.random.default_rng(seed)
    w, h = size
    count = 0
    for name in CLASS_PHOTOS:
        img = photo(name)
        os.makedirs(osp.join(folder, name), exist_ok=True)
        for i in range(per_class):
            scale = max(w / img.shape[1], h / img.shape[0]) * rng.uniform(1.0, 1.6)
            big = cv2.resize(img, (int(img.shape[1] * scale) + 1, int(img.shape[0] * scale) + 1),
                             interpolation=cv2.INTER_CUBIC)
            y, x = int(rng.integers(0, big.shape[0] - h + 1)), int(rng.integers(0, big.shape[1] - w + 1))
            crop = big[y:y + h, x:x + w]
            crop = crop[:, ::-1] if rng.random() < 0.5 else crop
            crop = np.clip(crop.astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
            cv2.imwrite(osp.join(folder, name, f'{name}_{i:05d}.JPEG'), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
            count += 1
    return count


def _ours(folder: str, batch: int):
    from mmengine.dataset import default_collate
    from mmengine.registry import DATASETS

    import coma  # noqa: F401  (registers the transforms)
    pipeline = [dict(type='LoadImage', skip_corrupt=False), dict(type='RandomResizedCrop', size=224, scale=(0.2, 1.0)),
                dict(type='RandomHorizontalFlip', prob=0.5), dict(type='PackInputs')]
    dataset = DATASETS.build(dict(type='ImageFolder', data_root=folder, pipeline=pipeline))
    return torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0,
                                       collate_fn=default_collate, drop_last=True)


def _timm(folder: str, batch: int):
    from timm.data import ImageDataset, create_transform
    from timm.data.loader import fast_collate
    transform = create_transform(224, is_training=True, scale=(0.2, 1.0), hflip=0.5, color_jitter=None,
                                 interpolation='bicubic', use_prefetcher=True)
    return torch.utils.data.DataLoader(ImageDataset(folder, transform=transform), batch_size=batch, shuffle=True,
                                       num_workers=0, collate_fn=fast_collate, drop_last=True)


def _rate(loader) -> float:
    start, images = time.perf_counter(), 0
    for batch in loader:
        inputs = batch['inputs'] if isinstance(batch, dict) else batch[0]
        assert inputs.dtype == torch.uint8 and tuple(inputs.shape[1:]) == (3, 224, 224), inputs.shape
        images += inputs.shape[0]
    return images / (time.perf_counter() - start)


def run(folder: str, rounds: int = 3, batch: int = 32, per_class: int = 40, out: str = '') -> Dict:
    """Makes the JPEGs (if ``folder`` has none), then alternates the two loaders ``rounds`` times over all
    files; returns (and writes to ``out``) images/s per round, medians and the ratio ours / timm."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    if not osp.isdir(folder) or not os.listdir(folder):
        make_jpegs(folder, per_class)
    files = sum(len(fs) for _, _, fs in os.walk(folder))
    loaders = dict(ours=_ours(folder, batch), timm=_timm(folder, batch))
    for loader in loaders.values():  # warm the file cache and imports
        next(iter(loader))
    rates: Dict[str, List[float]] = {k: [] for k in loaders}
    for _ in range(rounds):
        for name, loader in loaders.items():
            rates[name].append(_rate(loader))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    report = dict(files=files, image_size='500x375 JPEG q90', batch=batch, rounds=rounds,
                  images_per_s=rates, median_images_per_s=medians, ratio_ours_to_timm=medians['ours'] / medians['timm'],
                  torch=torch.__version__, cpu=os.cpu_count())
    for name in loaders:
        print(f'{name:5s} images/s per worker: ' + ' / '.join(f'{r:.1f}' for r in rates[name])
              + f'  (median {medians[name]:.1f})')
    print(f'ours / timm: {report["ratio_ours_to_timm"]:.2f}')
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(report, f, indent=1)
    return report
