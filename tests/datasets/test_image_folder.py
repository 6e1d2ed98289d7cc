"""ImageFolder + the strict loader: labels, flat folders, corrupt files named or skipped and counted."""

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DATASETS

import coma  # noqa: F401
from coma.datasets.transforms import LoadImage

PIPELINE = [dict(type='LoadImage'), dict(type='ResizeCenterCrop', size=32), dict(type='PackInputs')]


def _folder(root, classes=('a', 'b'), n=3, flat=False):
    rng = np.random.default_rng(0)
    for c in classes:
        d = root if flat else root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cv2.imwrite(str(d / f'{c}{i}.jpg'), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    return root


def test_labels_from_class_folders(tmp_path):
    ds = DATASETS.build(dict(type='ImageFolder', data_root=str(_folder(tmp_path / 'train')), pipeline=PIPELINE))
    assert len(ds) == 6 and ds.metainfo['classes'] == ('a', 'b')
    item = ds[4]
    assert item['inputs'].shape == (3, 32, 32) and item['inputs'].dtype == torch.uint8
    assert int(item['data_samples'].gt_label) == 1 and 'sample_idx' in item['data_samples'].metainfo


def test_flat_folder_has_no_labels(tmp_path):
    ds = DATASETS.build(dict(type='ImageFolder', data_root=str(_folder(tmp_path / 'x', flat=True)), pipeline=PIPELINE))
    assert len(ds) == 6 and 'gt_label' not in ds[0]['data_samples']


def test_missing_or_empty_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        DATASETS.build(dict(type='ImageFolder', data_root=str(tmp_path / 'nope'), pipeline=PIPELINE))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no images'):
        DATASETS.build(dict(type='ImageFolder', data_root=str(tmp_path / 'empty'), pipeline=PIPELINE))


def _truncate(path):
    data = open(path, 'rb').read()
    open(path, 'wb').write(data[:len(data) // 2])


def test_truncated_jpeg_names_the_file(tmp_path):
    root = _folder(tmp_path / 'train')
    bad = root / 'a' / 'a1.jpg'
    _truncate(bad)
    ds = DATASETS.build(dict(type='ImageFolder', data_root=str(root), pipeline=PIPELINE))
    with pytest.raises(IOError, match=f'cannot load image {bad}.*skip_corrupt'):
        ds[1]


def test_truncated_jpeg_is_skipped_and_counted(tmp_path):
    root = _folder(tmp_path / 'train')
    _truncate(root / 'a' / 'a1.jpg')
    pipeline = [dict(type='LoadImage', skip_corrupt=True)] + PIPELINE[1:]
    ds = DATASETS.build(dict(type='ImageFolder', data_root=str(root), pipeline=pipeline))
    before = LoadImage.skipped
    item = ds[1]  # the dataset draws another image instead
    assert item['inputs'].shape == (3, 32, 32)
    assert LoadImage.skipped >= before + 1  # the replacement is drawn at random and may hit it again
