"""Top-k classification accuracy for the mmengine evaluation loop (ImageNet top-1 / top-5)."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Percentage of samples whose label is among the ``k`` highest scores, for each ``k``.

    Args:
        scores: ``(N, num_classes)``.
        labels: ``(N,)`` class ids.
        topk: the k values; each must be ``<= num_classes``.

    Returns:
        ``{k: accuracy in %}``.

    Raises:
        ValueError: mismatched shapes, an empty set, or a k larger than the number of classes.
    """
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f'topk_accuracy: scores {tuple(scores.shape)} and labels {tuple(labels.shape)} do not match '
                         f'(expected (N, num_classes) and (N,))')
    if scores.shape[0] == 0:
        raise ValueError('topk_accuracy: no samples were evaluated')
    too_big = [k for k in topk if not 1 <= k <= scores.shape[1]]
    if too_big:
        raise ValueError(f'topk_accuracy: topk {too_big} not in [1, {scores.shape[1]}] (the number of classes)')
    ranked = scores.topk(max(topk), dim=1).indices  # N, kmax
    hit = ranked == labels[:, None]
    return {k: hit[:, :k].any(dim=1).float().mean().item() * 100 for k in topk}


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy (``accuracy/top1``, ``accuracy/top5``, ... in %) of ``pred_score`` vs ``gt_label``.

    Args:
        topk: the k values.
        collect_device: ``'cpu'`` or ``'gpu'``, for gathering results across processes.
        prefix: key prefix (default ``'accuracy'``).
    """
    default_prefix = 'accuracy'

    def __init__(self, topk: Tuple[int, ...] = (1, 5), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk,) if isinstance(topk, int) else tuple(topk)

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            get = sample.get if isinstance(sample, dict) else lambda k, s=sample: getattr(s, k, None)
            score, label = get('pred_score'), get('gt_label')
            if score is None or label is None:
                raise KeyError('Accuracy: every prediction needs pred_score and gt_label')
            self.results.append((score.detach().float().cpu(), int(label.reshape(-1)[0])))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        scores = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results])
        return {f'top{k}': acc for k, acc in topk_accuracy(scores, labels, self.topk).items()}
