"""Frozen-feature measurements of a backbone: pooled features, their spectrum and a linear probe.

One implementation serves the efficiency study (``tools/study_efficiency.py``) and the feature
spectrum (``tools/feature_spectrum.py``). The model is the linear-probe config's ImageClassifier
(frozen backbone, BatchNorm without affine + linear head), so the probe is the one the Runner trains.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


def probe_model(cfg_path: str, checkpoint: Optional[str], seed: int = 0):
    """The linear-probe config's classifier with ``checkpoint`` (a converted backbone; None or
    ``'random'``: a random initialisation under ``seed``), in eval mode.

    Returns:
        (model, cfg): the built ImageClassifier and its mmengine Config.
    """
    import coma  # noqa: F401  (registers the models)
    from mmengine.config import Config
    from mmengine.registry import MODELS
    cfg = Config.fromfile(cfg_path)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=None if checkpoint == 'random' else checkpoint)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval(), cfg


def probe_dataset(cfg, data_root: str, split: str):
    """The config's evaluation dataset (centre crops) over ``data_root/<split>``."""
    from mmengine.registry import DATASETS
    return DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=data_root, data_prefix=dict(img_path=split)))


@torch.no_grad()
def pooled_features(model, dataset, indices: Optional[Sequence[int]] = None, flip: bool = False,
                    batch: int = 50) -> Tuple[torch.Tensor, torch.Tensor]:
    """The model's pooled features (``extract_feat``) of ``dataset``'s items.

    Args:
        model: an ImageClassifier (its data preprocessor normalises the images).
        dataset: items with ``inputs`` and ``data_samples`` (with ``gt_label``).
        indices: which items (default: all).
        flip: mirror the images first (a second view for the probe's training set).
        batch: images per forward.

    Returns:
        (features ``(N, C)``, labels ``(N,)``).
    """
    indices = list(range(len(dataset))) if indices is None else list(indices)
    feats, labels = [], []
    for i in range(0, len(indices), batch):
        items = [dataset[j] for j in indices[i:i + batch]]
        data = model.data_preprocessor(dict(inputs=[d['inputs'] for d in items],
                                            data_samples=[d['data_samples'] for d in items]))
        x = data['inputs']
        feats.append(model.extract_feat(x.flip(-1) if flip else x))
        labels += [int(d['data_samples'].gt_label) for d in items]
    return torch.cat(feats), torch.tensor(labels)


def spectrum(feats: torch.Tensor) -> Tuple[float, float]:
    """How many directions ``(N, C)`` features use, centred over the N images.

    Returns:
        (share of the variance on the first principal component, effective rank: exp of the
        entropy of the normalised spectrum).
    """
    s2 = torch.linalg.svdvals(feats - feats.mean(0)) ** 2
    p = s2 / s2.sum()
    return float(p[0]), float(torch.exp(-(p * p.clamp_min(1e-12).log()).sum()))


def linear_probe(cfg_path: str, checkpoint: Optional[str], seed: int, data_root: str, epochs: int = 100,
                 lr: float = 0.1) -> float:
    """Top-1 (%) on ``val`` of the config's head trained on frozen features of ``train`` (centre crops
    and their mirror images) with SGD (momentum 0.9, cosine, batch 64): seconds on cached features.
    """
    from coma.evaluation import topk_accuracy
    model, cfg = probe_model(cfg_path, checkpoint, seed)
    train, val = (probe_dataset(cfg, data_root, split) for split in ('train', 'val'))
    xtr, ytr = pooled_features(model, train)
    xtr_flip, _ = pooled_features(model, train, flip=True)
    xtr, ytr = torch.cat([xtr, xtr_flip]), torch.cat([ytr, ytr])
    xva, yva = pooled_features(model, val)
    head = model.head.train()
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(xtr), generator=gen).split(64):
            loss = F.cross_entropy(head(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    head.eval()
    with torch.no_grad():
        return topk_accuracy(head(xva), yva, (1,))[1]
