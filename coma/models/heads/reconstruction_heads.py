"""The pre-training heads: what CoMA's and MAE's decoders are scored against, and how.

Paper: Li et al., "CoMA: ..." (Figure 3): M_t reconstructs the pixels of the units it did not see
(L_pix) and predicts the latents the frozen M_{t-1} computes for them (L_lat). As in mmpretrain's
``MAEPretrainHead``, a head owns its targets and its config-built loss; the decoder owns the
projections (``decoder.pixel_head``, ``decoder.latent_head``) that produce the predictions.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.registry import MODELS


class PixelReconstructionHead(nn.Module):
    """L_pix: unit-pixel targets (MAE's per-unit normalisation with ``norm_pix``) and their loss.

    Args:
        norm_pix: normalise each target unit to zero mean, unit variance (MAE's ``norm_pix_loss``).
        eps: variance floor of the normalisation.
        loss: config of the loss between prediction and target (default: mean squared error,
            ``PixelReconstructionLoss`` without its own normalisation).
    """

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6, loss: Optional[Dict] = None) -> None:
        super().__init__()
        self.norm_pix, self.eps = norm_pix, eps
        self.loss_module = MODELS.build(loss or dict(type='PixelReconstructionLoss', norm_pix=False))

    def _stats(self, units: torch.Tensor):
        return units.mean(-1, keepdim=True), (units.var(-1, keepdim=True) + self.eps).sqrt()

    def target(self, units: torch.Tensor) -> torch.Tensor:
        """``(B, N, P)`` unit pixels -> the targets the decoder learns (normalised with ``norm_pix``)."""
        if not self.norm_pix:
            return units
        mean, std = self._stats(units)
        return (units - mean) / std

    def to_pixels(self, pred: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`target`: predictions ``(B, N, P)`` back in the space of ``units``
        (each unit's own mean and std), e.g. for a reconstruction picture."""
        if not self.norm_pix:
            return pred
        mean, std = self._stats(units)
        return pred * std + mean

    def loss(self, pred: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        """pred: ``(B, K, P)`` decoder pixels of the scored units; units: their true pixels -> scalar."""
        return self.loss_module(pred, self.target(units))


class LatentPredictionHead(nn.Module):
    """L_lat: M_t's predicted latents against M_{t-1}'s (stop-gradient), weighted by lambda_lat.

    Args:
        loss: config of the distance (default: ``LatentPredictionLoss``, cosine on batch-standardised targets).
        loss_weight: lambda_lat. 0 makes the loss monitoring only: computed without a graph and
            logged unweighted, never optimised.
    """

    def __init__(self, loss: Optional[Dict] = None, loss_weight: float = 1.0) -> None:
        super().__init__()
        if loss_weight < 0:
            raise ValueError(f'LatentPredictionHead: loss_weight (lambda_lat) must be >= 0, got {loss_weight}')
        self.loss_module = MODELS.build(dict(dict(type='LatentPredictionLoss'), **(loss or {})))
        self.loss_weight = loss_weight

    @property
    def monitor_only(self) -> bool:
        """Whether the loss is logged without being optimised (``loss_weight == 0``)."""
        return self.loss_weight == 0

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: ``(B, K, C)`` -> scalar (weighted; unweighted and graph-free if monitor-only)."""
        if self.monitor_only:
            with torch.no_grad():
                return self.loss_module(pred, target)
        return self.loss_module(pred, target) * self.loss_weight
