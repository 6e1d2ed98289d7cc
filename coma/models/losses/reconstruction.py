"""CoMA's losses: normalised-pixel reconstruction (L_pix) and latent prediction (L_lat)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class PixelReconstructionLoss(nn.Module):
    """MSE between predicted and target unit pixels, with MAE's per-unit normalisation.

    Args:
        norm_pix: normalise each target unit to zero mean, unit variance (MAE's ``norm_pix_loss``).
        eps: variance floor.
    """

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_pix, self.eps = norm_pix, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: ``(B, N, P)`` pixels of the scored units -> scalar mean loss."""
        if self.norm_pix:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + self.eps).sqrt()
        return F.mse_loss(pred.float(), target.float())


class LatentPredictionLoss(nn.Module):
    """Distance between predicted latents and the frozen model's (stop-gradient) latents.

    Args:
        kind: ``'cosine'`` (1 - cosine similarity; our default, scale-free) or ``'smooth_l1'``
            (on layer-normalised targets).
    """
    KINDS = ('cosine', 'smooth_l1')

    def __init__(self, kind: str = 'cosine') -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"latent loss kind '{kind}' is unknown; allowed: {list(self.KINDS)}")
        self.kind = kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: ``(B, N, C)`` -> scalar mean loss; ``target`` gets no gradient."""
        pred, target = pred.float(), target.detach().float()
        if self.kind == 'cosine':
            return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
        return F.smooth_l1_loss(pred, F.layer_norm(target, target.shape[-1:]))
