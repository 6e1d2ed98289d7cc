"""The small, deterministic, real-photo demo datasets (no download); ``tools/make_demo_data.py``
writes them.

Every picture comes from scikit-image's bundled photos and textures (``skimage.data``):
* ImageNet-style: crops of 10 photos, labelled by source photo. Train crops come from the left 70%
  of each photo, val crops from the right 30%, so val is held out spatially.
* COCO: coloured circles, rectangles and triangles on textured photo backgrounds, with polygon and
  RLE masks, ``iscrowd`` regions, an image without annotations and varying image sizes.
* ADE20K: regions of 4 textures pasted on a photo background; label 0 = "other" (background).
* Pool: unlabelled images of the downstream domain for self-supervised pre-training, many more than
  the labelled sets: COCO-style shape scenes, ADE-style texture scenes and plain photo crops in
  turn, all drawn from the train side of the photos (the labelled val sets use the other side).
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np

CLASS_PHOTOS = ('astronaut', 'brick', 'camera', 'chelsea', 'coffee', 'grass', 'gravel', 'hubble_deep_field',
                'retina', 'rocket')
BACKGROUNDS = ('brick', 'grass', 'gravel', 'coffee', 'chelsea', 'astronaut', 'rocket', 'retina')
SHAPES = ('circle', 'rectangle', 'triangle')
ADE_TEXTURES = ('brick', 'grass', 'gravel', 'hubble_deep_field')
ADE_CLASSES = ('brick', 'grass', 'gravel', 'stars')  # label ids 1..4 on disk; 0 is "other"
TRAIN_FRACTION = 0.7
#: Scenes in the unlabelled pre-training pool (the demo pre-training configs' schedules assume it).
POOL_SIZE = 2000


def photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as BGR uint8 (grey ones are replicated to 3 channels)."""
    from skimage import data
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return np.ascontiguousarray(img[..., :3][..., ::-1])


def random_crop(img: np.ndarray, rng: np.random.Generator, out: Tuple[int, int], x_range: Tuple[float, float]) -> np.ndarray:
    """A random square-ish crop within the horizontal fraction ``x_range`` of ``img``, resized to ``out`` (w, h)."""
    h, w = img.shape[:2]
    x0, x1 = int(x_range[0] * w), int(x_range[1] * w)
    side = int(rng.uniform(0.25, 0.9) * min(h, x1 - x0))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(x0, x1 - side + 1))
    return cv2.resize(img[y:y + side, x:x + side], out, interpolation=cv2.INTER_AREA)


def make_imagenet(out: str, per_class: Tuple[int, int] = (40, 10), size: int = 128, seed: int = 0) -> None:
    """Class folders ``out/{train,val}/<photo>/*.jpg`` of photo crops."""
    rng = np.random.default_rng(seed)
    for name in CLASS_PHOTOS:
        img = photo(name)
        for split, n, xr in (('train', per_class[0], (0.0, TRAIN_FRACTION)), ('val', per_class[1], (TRAIN_FRACTION, 1.0))):
            folder = osp.join(out, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                cv2.imwrite(osp.join(folder, f'{name}_{i:04d}.jpg'), random_crop(img, rng, (size, size), xr),
                            [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f'ImageNet-style demo data: {len(CLASS_PHOTOS)} classes, {per_class} train/val crops each -> {out}')


def _shape_mask(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    size = int(rng.uniform(0.18, 0.4) * min(h, w))
    cx, cy = int(rng.integers(size // 2 + 2, w - size // 2 - 2)), int(rng.integers(size // 2 + 2, h - size // 2 - 2))
    if kind == 'circle':
        cv2.circle(mask, (cx, cy), size // 2, 1, -1)
    elif kind == 'rectangle':
        aspect = rng.uniform(0.6, 1.6)
        hw, hh = int(size / 2 * aspect ** 0.5), int(size / 2 / aspect ** 0.5)
        cv2.rectangle(mask, (cx - hw, cy - hh), (cx + hw, cy + hh), 1, -1)
    else:
        pts = np.array([[cx, cy - size // 2], [cx - size // 2, cy + size // 2], [cx + size // 2, cy + size // 2]])
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1)
    return mask


def _paint(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    colour = rng.integers(40, 255, size=3)
    shade = 0.75 + 0.25 * rng.random(mask.shape)[..., None]
    img[mask > 0] = (colour * shade)[mask > 0].astype(np.uint8)


def _polygon(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.flatten().astype(float).tolist() for c in contours if len(c) >= 3]


def make_coco(out: str, n_train: int = 48, n_val: int = 16, seed: int = 0) -> None:
    """``out/{train,val}2017/*.jpg`` and ``out/annotations/instances_{train,val}2017.json``."""
    from pycocotools import mask as mask_utils
    rng = np.random.default_rng(seed)
    textures = {n: photo(n) for n in BACKGROUNDS}
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(SHAPES)]
    for split, n_img, xr in (('train', n_train, (0.0, TRAIN_FRACTION)), ('val', n_val, (TRAIN_FRACTION, 1.0))):
        folder = osp.join(out, f'{split}2017')
        os.makedirs(folder, exist_ok=True)
        images, annotations = [], []
        for i in range(n_img):
            w, h = int(rng.choice([192, 224, 256, 288])), int(rng.choice([160, 192, 224, 256]))
            img = random_crop(textures[BACKGROUNDS[i % len(BACKGROUNDS)]], rng, (w, h), xr)
            image_id = i + 1
            file_name = f'{split}_{i:04d}.jpg'
            n_obj = 0 if i == n_img - 1 else int(rng.integers(1, 4))  # the last image has no objects
            for j in range(n_obj):
                cat = int(rng.integers(0, len(SHAPES)))
                mask = _shape_mask(SHAPES[cat], h, w, rng)
                _paint(img, mask, rng)
                ys, xs = np.nonzero(mask)
                bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
                crowd = int(split == 'train' and i % 7 == 3 and j == 0)
                if crowd or j == 1:  # compressed RLE for crowd regions and for some instances
                    rle = mask_utils.encode(np.asfortranarray(mask))
                    segm = dict(size=[h, w], counts=rle['counts'].decode())
                else:
                    segm = _polygon(mask)
                annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=cat + 1,
                                        segmentation=segm, area=float(mask.sum()), bbox=bbox, iscrowd=crowd))
            cv2.imwrite(osp.join(folder, file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            images.append(dict(id=image_id, file_name=file_name, width=w, height=h))
        with open(osp.join(out, 'annotations', f'instances_{split}2017.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    print(f'COCO-format demo data: {n_train}/{n_val} images, classes {SHAPES} -> {out}')


def make_ade(out: str, n_train: int = 48, n_val: int = 16, seed: int = 0) -> None:
    """``out/images/{training,validation}/*.jpg`` and ``out/annotations/{...}/*.png`` (0 = other)."""
    rng = np.random.default_rng(seed)
    textures = [photo(n) for n in ADE_TEXTURES]
    backgrounds = [photo(n) for n in ('coffee', 'chelsea', 'astronaut', 'rocket')]
    for split, n_img, xr in (('training', n_train, (0.0, TRAIN_FRACTION)), ('validation', n_val, (TRAIN_FRACTION, 1.0))):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(out, sub, split), exist_ok=True)
        for i in range(n_img):
            w, h = int(rng.choice([192, 256, 320])), int(rng.choice([192, 224, 256]))
            img = random_crop(backgrounds[i % len(backgrounds)], rng, (w, h), xr)
            label = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(2, 5))):
                cls = int(rng.integers(0, len(ADE_TEXTURES)))
                region = _shape_mask(SHAPES[int(rng.integers(0, 3))], h, w, rng) > 0
                patch = random_crop(textures[cls], rng, (w, h), xr)
                img[region] = patch[region]
                label[region] = cls + 1
            cv2.imwrite(osp.join(out, 'images', split, f'ade_{split}_{i:05d}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(out, 'annotations', split, f'ade_{split}_{i:05d}.png'), label)
    print(f'ADE20K-format demo data: {n_train}/{n_val} images, classes {ADE_CLASSES} (+0 other) -> {out}')


def make_pool(out: str, n: int = POOL_SIZE, size: int = 256, seed: int = 0) -> None:
    """``out/*.jpg``: ``n`` unlabelled ``size`` x ``size`` scenes of the downstream domain (a flat
    folder, as :class:`coma.datasets.ImageFolder` reads without labels)."""
    rng = np.random.default_rng(seed + 1000)  # not the labelled sets' stream
    shape_bgs = {name: photo(name) for name in BACKGROUNDS}
    textures = [photo(name) for name in ADE_TEXTURES]
    region_bgs = [photo(name) for name in ('coffee', 'chelsea', 'astronaut', 'rocket')]
    photos = [photo(name) for name in CLASS_PHOTOS]
    train = (0.0, TRAIN_FRACTION)
    os.makedirs(out, exist_ok=True)
    for i in range(n):
        kind = i % 3
        if kind == 0:  # shapes on a textured background, as the COCO-style set
            img = random_crop(shape_bgs[BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]], rng, (size, size), train)
            for _ in range(int(rng.integers(0, 4))):
                _paint(img, _shape_mask(SHAPES[int(rng.integers(3))], size, size, rng), rng)
        elif kind == 1:  # texture regions on a photo, as the ADE-style set
            img = random_crop(region_bgs[int(rng.integers(len(region_bgs)))], rng, (size, size), train)
            for _ in range(int(rng.integers(2, 5))):
                region = _shape_mask(SHAPES[int(rng.integers(3))], size, size, rng) > 0
                img[region] = random_crop(textures[int(rng.integers(len(textures)))], rng, (size, size), train)[region]
        else:  # a plain photo crop
            img = random_crop(photos[int(rng.integers(len(photos)))], rng, (size, size), train)
        cv2.imwrite(osp.join(out, f'pool_{i:05d}.jpg'), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f'unlabelled pre-training pool: {n} images of {size}x{size} -> {out}')
