"""Slow learning checks (in `make test`, marked `slow`): the demo detector and segmenter learn.

Both train from random initialisation (seed 0) on the generated demo data with the demo configs' own
schedules (Mask R-CNN 8 epochs, UperNet 320 iterations; a few minutes each on 2 CPU cores) and are
scored on the held-out demo split. The floors sit below what seed 0 reaches and above what a
regression of the training reaches; the figures are in docs/results.md ("The learning checks").
"""
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = pytest.mark.slow

# Seed 0 from random initialisation, measured with the current recipe on three machines: bbox mAP
# 0.034 / 0.046 / 0.062, segm mAP 0.048 / 0.058 / 0.080, mIoU 61.0 / 61.1 (seeds 1-7 of the detector:
# bbox 0.036-0.089, segm 0.031-0.091). Single runs do not repeat across machines (float summation
# order), hence the margins. A training that barely moves (the learning rate a tenth of the config's)
# gives bbox 0.006 and segm 0.005; a subtler regression (the layer-decay scale inverted, so the heads
# learn at 0.9**13 of their lr) gives bbox 0.032 and segm 0.030, inside the detector's seed spread, so
# only the segmenter's floor catches it (mIoU 58.7).
BBOX_MAP_MIN = 0.020
SEGM_MAP_MIN = 0.020
MIOU_MIN = 59.5


def _train_and_test(task, data_root, work):
    from coma.demo import downstream

    class Args:
        pass
    args = Args()
    args.root = ROOT
    args.data_root = str(data_root)
    args.recipe = 'demo'
    args.seeds = [0]
    return downstream(args, str(work), task, init='scratch', seed=0)


def test_mask_rcnn_demo_learns(demo_data, tmp_path):
    metrics = _train_and_test('det', demo_data, tmp_path)
    assert metrics['coco/bbox_mAP'] >= BBOX_MAP_MIN, json.dumps(metrics)
    assert metrics['coco/segm_mAP'] >= SEGM_MAP_MIN, json.dumps(metrics)


def test_upernet_demo_learns(demo_data, tmp_path):
    metrics = _train_and_test('seg', demo_data, tmp_path)
    assert metrics['mIoU'] >= MIOU_MIN, json.dumps(metrics)
