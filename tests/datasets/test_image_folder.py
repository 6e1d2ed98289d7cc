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


def test_an_annotation_list_replaces_listing_the_folder(tmp_path, monkeypatch):
    """``write_annotation_list`` lists once; ``ImageFolder(ann_file=...)`` then reads the same samples,
    labels and classes without listing a folder (1.28M files on every rank for ImageNet)."""
    import os

    from coma.datasets import write_annotation_list
    root = _folder(tmp_path / 'train')
    assert write_annotation_list(str(root), str(tmp_path / 'meta' / 'train.txt')) == 6
    listed = DATASETS.build(dict(type='ImageFolder', data_root=str(root), pipeline=PIPELINE))

    def no_listing(path):
        raise AssertionError(f'listed {path}')
    monkeypatch.setattr(os, 'listdir', no_listing)
    read = DATASETS.build(dict(type='ImageFolder', data_root=str(root), ann_file=str(tmp_path / 'meta' / 'train.txt'),
                               pipeline=PIPELINE))
    assert [read.get_data_info(i)['img_path'] for i in range(6)] == [listed.get_data_info(i)['img_path'] for i in range(6)]
    assert [read.get_data_info(i)['gt_label'] for i in range(6)] == [listed.get_data_info(i)['gt_label'] for i in range(6)]
    assert read.metainfo['classes'] == listed.metainfo['classes'] == ('a', 'b')
    assert torch.equal(read[4]['inputs'], listed[4]['inputs'])


def test_a_bad_annotation_line_is_named(tmp_path):
    root = _folder(tmp_path / 'train')
    (tmp_path / 'list.txt').write_text('a/a0.jpg 0\na/a1.jpg zero\n')
    with pytest.raises(ValueError, match=r'list.txt:2: expected "path \[label\]"'):
        DATASETS.build(dict(type='ImageFolder', data_root=str(root), ann_file=str(tmp_path / 'list.txt'), pipeline=PIPELINE))


def _count_ops(fn):
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))
    with Count():
        out = fn()
    return Count.n, out


@pytest.mark.parametrize('batch', [2, 16])
def test_stacked_batches_are_normalised_once_with_the_same_values(tmp_path, batch):
    """mmengine's ``default_collate`` (the ImageNet configs') + ``ImgDataPreprocessor``: the same inputs as
    ``pseudo_collate``, in a fixed number of operations whatever the batch (``pseudo_collate``: about
    four an image)."""
    from mmengine.dataset import default_collate, pseudo_collate
    from mmengine.model import ImgDataPreprocessor
    ds = DATASETS.build(dict(type='ImageFolder', data_root=str(_folder(tmp_path / 'train', n=8)), pipeline=PIPELINE))
    samples = [ds[i % len(ds)] for i in range(batch)]
    pre = ImgDataPreprocessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True)
    stacked = default_collate(samples)
    assert stacked['inputs'].shape == (batch, 3, 32, 32) and stacked['inputs'].dtype == torch.uint8
    ops_stacked, out_stacked = _count_ops(lambda: pre(stacked, True))
    ops_listed, out_listed = _count_ops(lambda: pre(pseudo_collate(samples), True))
    torch.testing.assert_close(out_stacked['inputs'], out_listed['inputs'])
    assert [s.gt_label for s in out_stacked['data_samples']] == [s.gt_label for s in out_listed['data_samples']]
    assert ops_stacked <= 8 and ops_listed >= 4 * batch
