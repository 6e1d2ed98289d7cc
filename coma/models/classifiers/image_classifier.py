"""Image classification on a DyViT or ViT backbone: ImageNet fine-tuning and linear probing.

Paper: Li et al., "CoMA: ..." (ImageNet-1K top-1 after fine-tuning). Recipes: SPEC section 5.

Batch augmentations are timm's own: :class:`timm.data.Mixup` (mixup, cutmix and the label
smoothing of the mixed targets) and :class:`timm.data.random_erasing.RandomErasing`, applied to the
normalised batch in :meth:`ImageClassifier.loss`. Without mixup the loss is cross-entropy with
``label_smoothing``.
"""
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.structures import BaseDataElement

from ..heads.cls_head import LinearClsHead


class ImageClassifier(BaseModel):
    """Backbone -> global average pool of the last feature map -> :class:`LinearClsHead`.

    Args:
        backbone: config of a backbone whose ``forward`` returns a tuple of NCHW maps (``DyViT`` with
            the last stage in ``out_indices``, or ``ViT``); ``num_features`` is the width.
        num_classes: number of classes.
        head: extra :class:`LinearClsHead` arguments (``pre_norm``, ``dropout``, ``init_std``).
        freeze_backbone: linear probing: no backbone parameter is trained and the backbone stays in
            eval mode (no drop path, frozen norms).
        mixup: arguments of :class:`timm.data.Mixup` (``mixup_alpha``, ``cutmix_alpha``,
            ``label_smoothing``, ...), or None. ``num_classes`` is filled in.
        label_smoothing: label smoothing of the plain cross-entropy (used when ``mixup`` is None).
        random_erasing: arguments of timm's ``RandomErasing`` (e.g. ``probability=0.25,
            mode='pixel'``), or None.
        data_preprocessor: mmengine data preprocessor config.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: Dict, num_classes: int, head: Optional[Dict] = None,
                 freeze_backbone: bool = False, mixup: Optional[Dict] = None, label_smoothing: float = 0.0,
                 random_erasing: Optional[Dict] = None, data_preprocessor: Optional[Dict] = None,
                 init_cfg: Optional[Dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        width = self.backbone.num_features
        self.head = LinearClsHead(width, num_classes, **(head or {}))
        self.num_classes = num_classes
        self.freeze_backbone = freeze_backbone
        self.label_smoothing = label_smoothing
        self.mixup = self._timm_mixup(mixup, num_classes)
        self.random_erasing = self._timm_erasing(random_erasing)
        if freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    @staticmethod
    def _timm_mixup(cfg: Optional[Dict], num_classes: int):
        if not cfg:
            return None
        from timm.data import Mixup
        return Mixup(**dict(cfg, num_classes=num_classes))

    @staticmethod
    def _timm_erasing(cfg: Optional[Dict]):
        if not cfg:
            return None
        from timm.data.random_erasing import RandomErasing
        return RandomErasing(**cfg)  # its device is set to the batch's at each call

    @property
    def num_layers(self) -> int:
        """Layer count for lr decay (the backbone's; the head is the last layer)."""
        return self.backbone.num_layers

    def train(self, mode: bool = True) -> 'ImageClassifier':
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, C)``: the mean of the last feature map."""
        maps = self.backbone(inputs)
        if not isinstance(maps, (tuple, list)) or maps[-1].ndim != 4:
            raise TypeError(f'ImageClassifier: {type(self.backbone).__name__}.forward must return a tuple of NCHW '
                            f'maps (DyViT needs num_classes=0 and the last stage in out_indices)')
        return maps[-1].mean(dim=(2, 3))

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.freeze_backbone:
            with torch.no_grad():
                feats = self.extract_feat(inputs)
            return self.head(feats)
        return self.head(self.extract_feat(inputs))

    @staticmethod
    def _labels(data_samples: List[BaseDataElement]) -> torch.Tensor:
        missing = [i for i, s in enumerate(data_samples) if 'gt_label' not in s]
        if missing:
            raise KeyError(f'ImageClassifier: samples {missing} of the batch carry no gt_label; '
                           f'is the dataset labelled (class folders)?')
        return torch.cat([s.gt_label for s in data_samples])

    def loss(self, inputs: torch.Tensor, data_samples: List[BaseDataElement]) -> Dict[str, torch.Tensor]:
        """Cross-entropy (soft targets under mixup/cutmix) of the batch."""
        labels = self._labels(data_samples).to(inputs.device)
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(f'ImageClassifier: labels {labels.unique().tolist()} outside [0, {self.num_classes})')
        if self.random_erasing is not None:
            inputs = self.erase(inputs)
        if self.mixup is not None:
            if inputs.shape[0] % 2:
                raise ValueError(f'ImageClassifier: mixup/cutmix needs an even batch, got {inputs.shape[0]} '
                                 f'(set drop_last=True and an even batch_size)')
            inputs, targets = self.mixup(inputs, labels)
            return dict(loss=F.cross_entropy(self._logits(inputs), targets))
        return dict(loss=F.cross_entropy(self._logits(inputs), labels, label_smoothing=self.label_smoothing))

    def erase(self, inputs: torch.Tensor) -> torch.Tensor:
        """timm's random erasing of the batch, its noise drawn on the batch's device (not copied box by box)."""
        self.random_erasing.device = inputs.device
        return self.random_erasing(inputs)

    def predict(self, inputs: torch.Tensor, data_samples: Optional[List[BaseDataElement]] = None
                ) -> List[BaseDataElement]:
        """Adds ``pred_score`` (softmax, ``(num_classes,)``) and ``pred_label`` to each sample."""
        scores = F.softmax(self._logits(inputs).float(), dim=1)
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(inputs.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax(dim=0, keepdim=True)
        return data_samples

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], List[BaseDataElement], torch.Tensor]:
        """mmengine's entry point: ``mode`` is ``'loss'``, ``'predict'`` or ``'tensor'`` (logits)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._logits(inputs)
        raise ValueError(f"ImageClassifier: unknown mode '{mode}'; use 'loss', 'predict' or 'tensor'")
