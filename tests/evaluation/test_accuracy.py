"""Top-k accuracy against a hand-computed example, and its errors."""
import pytest
import torch
from mmengine.structures import BaseDataElement

from coma.evaluation import Accuracy, topk_accuracy

# 4 samples, 4 classes. Ranked classes per row: [0,1,2,3], [3,2,1,0], [1,0,3,2], [2,3,0,1]
SCORES = torch.tensor([[0.9, 0.5, 0.3, 0.1],
                       [0.1, 0.2, 0.3, 0.4],
                       [0.3, 0.6, 0.05, 0.05 + 1e-3],
                       [0.2, 0.1, 0.4, 0.3]])
LABELS = torch.tensor([0, 2, 3, 1])
# top-1 hits: sample 0 only -> 25 %. top-2: 0 (rank 1), 1 (label 2 is 2nd) -> 50 %.
# top-3: + sample 2 (label 3 is 3rd) -> 75 %. top-4: all -> 100 %.


def test_topk_accuracy_by_hand():
    assert topk_accuracy(SCORES, LABELS, (1, 2, 3, 4)) == {1: 25.0, 2: 50.0, 3: 75.0, 4: 100.0}


def test_metric_through_data_samples_matches():
    metric = Accuracy(topk=(1, 3))
    samples = []
    for score, label in zip(SCORES, LABELS):
        s = BaseDataElement(pred_score=score, gt_label=label.view(1))
        samples.append(s.to_dict())  # mmengine hands metrics dicts (BaseModel.val_step output via to_dict)
    metric.process({}, samples[:2])
    metric.process({}, samples[2:])
    assert metric.evaluate(4) == {'accuracy/top1': 25.0, 'accuracy/top3': 75.0}


def test_topk_larger_than_classes_is_a_clear_error():
    with pytest.raises(ValueError, match=r'topk \[5\] not in \[1, 4\]'):
        topk_accuracy(SCORES, LABELS, (1, 5))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match='do not match'):
        topk_accuracy(SCORES, LABELS[:3])
