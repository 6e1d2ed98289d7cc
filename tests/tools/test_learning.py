"""Slow learning checks (in `make test`, marked `slow`): the demo detector and segmenter learn.

Both train from random initialisation on the generated demo data with the demo configs' own
schedules (a few minutes each on 2 CPU cores) and are scored on the held-out demo split.
Thresholds are set well below what we measured (see docs/results.md) and far above
chance: an untrained Mask R-CNN scores ~0 mAP; predicting one class everywhere gives ~1/4 of the
classes' IoU.
"""
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
pytestmark = pytest.mark.slow

# Measured from random initialisation (seed 0) by `make demo` on 2 CPU cores (2026-11-26): bbox mAP
# 0.088, segm mAP 0.099 after the 10-epoch demo schedule (~8 min on one thread); mIoU 63.0 after 400
# iterations (~5 min on one thread). An untrained Mask R-CNN scores 0.000.
# 2026-11-29 (issue 11): after a numerically equivalent DM-MSA rewrite (same init, identical forward,
# gradients within 1e-6 relative), a fresh clone on another 2-core machine gave bbox 0.035 / segm
# 0.063 (mAP_50 0.12): the losses of old and new code agree to 0.2% after 2 epochs and drift apart by
# chaos, as single demo runs do (issue 12 saw 0.088 vs 0.116 from scratch across machines). The bbox
# floor is 0.02: still far above the untrained 0.000.
# 2026-11-30 (issue 12): the demo schedules were cut to fit make demo in 25 minutes (Mask R-CNN 8
# epochs with RoIAlign sampling 2x2, UperNet 320 iterations); the floors stay, see docs/results.md
# for what the shorter schedules reach.
BBOX_MAP_MIN = 0.02
SEGM_MAP_MIN = 0.04
MIOU_MIN = 40.0


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
