"""Bad downstream data fails with the file named: a COCO image that is missing, a PNG label out of range."""
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import coma  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A private copy of the demo data (these tests damage it)."""
    out = tmp_path_factory.mktemp('bad')
    subprocess.run([sys.executable, 'tools/make_demo_data.py', '--coco', str(out / 'coco'), '--ade', str(out / 'ade')],
                   cwd=ROOT, check=True, capture_output=True)
    return out


def test_missing_coco_image_is_named(demo):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(ROOT, 'mmdet_configs', 'dyvit', 'mask-rcnn_dyvit-n_fpn_demo.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(demo / 'coco')
    missing = demo / 'coco' / 'train2017' / 'train_0002.jpg'
    missing.unlink()
    ds = DATASETS.build(ds_cfg)
    index = next(i for i in range(len(ds)) if ds.get_data_info(i)['img_path'].endswith('train_0002.jpg'))
    with pytest.raises(FileNotFoundError, match='train_0002.jpg'):
        ds.prepare_data(index)


def test_out_of_range_label_is_named(demo):
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(ROOT, 'mmseg_configs', 'dyvit', 'upernet_dyvit-n_demo.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(demo / 'ade')
    bad = demo / 'ade' / 'annotations' / 'training' / 'ade_training_00003.png'
    label = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    label[:4, :4] = 9  # class 9 does not exist (4 classes)
    cv2.imwrite(str(bad), label.astype(np.uint8))
    ds = DATASETS.build(ds_cfg)
    index = next(i for i in range(len(ds)) if ds.get_data_info(i)['seg_map_path'].endswith('00003.png'))
    with pytest.raises(ValueError, match=r'ade_training_00003.png has ids \[8\] outside \[0, 4\)'):
        ds.prepare_data(index)
