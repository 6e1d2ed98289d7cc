"""A linear classification head over pooled backbone features (fine-tuning and linear probing).

Paper: Li et al., "CoMA: ..." reports ImageNet-1K top-1 after fine-tuning; the recipes are SPEC
section 5 (MAE's fine-tuning and linear-probing protocols).
"""
from typing import Optional

import torch
import torch.nn as nn

#: ``pre_norm`` choices: LayerNorm (MAE fine-tuning's ``fc_norm``), BatchNorm without affine
#: (MAE's linear probe), or nothing.
PRE_NORMS = ('layer', 'batch', None)


class LinearClsHead(nn.Module):
    """``(B, C)`` pooled features -> optional norm -> dropout -> ``(B, num_classes)`` logits.

    Args:
        in_channels: feature width C.
        num_classes: number of classes.
        pre_norm: ``'layer'``, ``'batch'`` (BatchNorm1d, affine=False, as MAE's linear probe) or None.
        dropout: dropout before the linear layer.
        init_std: std of the truncated-normal weight init (MAE: 2e-5 fine-tune, 0.01 linear probe).
    """

    def __init__(self, in_channels: int, num_classes: int, pre_norm: Optional[str] = 'layer',
                 dropout: float = 0.0, init_std: float = 2e-5) -> None:
        super().__init__()
        if pre_norm not in PRE_NORMS:
            raise ValueError(f'LinearClsHead: pre_norm must be one of {PRE_NORMS}, got {pre_norm!r}')
        if num_classes <= 0:
            raise ValueError(f'LinearClsHead: num_classes must be > 0, got {num_classes}')
        self.in_channels, self.num_classes = in_channels, num_classes
        if pre_norm == 'layer':
            self.norm = nn.LayerNorm(in_channels)
        elif pre_norm == 'batch':
            self.norm = nn.BatchNorm1d(in_channels, affine=False, eps=1e-6)
        else:
            self.norm = nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)
        nn.init.trunc_normal_(self.fc.weight, std=init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` -> ``(B, num_classes)``."""
        if feats.ndim != 2 or feats.shape[1] != self.in_channels:
            raise ValueError(f'LinearClsHead: expected features (B, {self.in_channels}), got {tuple(feats.shape)}')
        return self.fc(self.drop(self.norm(feats)))
