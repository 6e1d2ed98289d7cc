"""CoMA's losses: normalised-pixel reconstruction (L_pix) and latent prediction (L_lat)."""
import torch
import torch.nn as nn
import torch.distributed as dist
import torch.nn.functional as F


def _global_moments(flat: torch.Tensor):
    """Per-channel mean and (biased) variance of ``flat`` ``(N, C)`` over every process's rows."""
    count = flat.new_full((1,), float(flat.shape[0]), dtype=torch.float64)  # a fill, no host-to-device copy
    sums = torch.cat([flat.double().sum(0), flat.double().pow(2).sum(0), count])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(sums)
    channels = flat.shape[-1]
    n = sums[-1]
    mean = sums[:channels] / n
    var = (sums[channels:2 * channels] / n - mean * mean).clamp_min(0)
    return mean.to(flat.dtype), var.to(flat.dtype)


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
        target_norm: ``'batch'`` or ``'instance'``: standardise every channel of the
            targets (zero mean, unit variance, no affine) before the distance, over all the scored
            units of the batch (``'batch'``) or over each image's own scored units (``'instance'``,
            data2vec's instance norm of its teacher's tokens).
            With ``'batch'``, an encoder that gives every unit the same latent gets all-zero targets,
            which no prediction matches: the loss does not reward the collapse that an exact copy
            (m = 0) as target model otherwise allows (raw targets collapse, docs/results.md). Under DDP the
            statistics are those of the global batch (all-reduced), so N processes compute what
            one process does with the whole batch. ``'instance'`` also removes what a channel has in
            common over an image's units: an image-level latent (every unit of an image the same,
            images different), which ``'batch'`` still rewards, becomes an all-zero target too, and
            only how the units of one image differ is left to predict.
        eps: variance floor of ``target_norm`` ``'batch'`` and ``'instance'``.
    """
    KINDS = ('cosine', 'smooth_l1')
    TARGET_NORMS = ('batch', 'instance')

    def __init__(self, kind: str = 'cosine', target_norm: str = 'batch', eps: float = 1e-6) -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"latent loss kind '{kind}' is unknown; allowed: {list(self.KINDS)}")
        if target_norm not in self.TARGET_NORMS:
            raise ValueError(f"latent target_norm '{target_norm}' is unknown; allowed: {list(self.TARGET_NORMS)}")
        self.kind, self.target_norm, self.eps = kind, target_norm, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: ``(B, N, C)`` -> scalar mean loss; ``target`` gets no gradient."""
        pred, target = pred.float(), target.detach().float()
        if self.target_norm == 'batch':
            mean, var = _global_moments(target.reshape(-1, target.shape[-1]))
        else:  # 'instance': over each image's own units
            var, mean = torch.var_mean(target, dim=1, correction=0, keepdim=True)
        # a channel constant over its units carries nothing: exactly 0, not rounding noise
        target = torch.where(var > self.eps, (target - mean) * (var + self.eps).rsqrt(), 0.0)
        if self.kind == 'cosine':
            return (1 - F.cosine_similarity(pred, target, dim=-1)).mean()
        return F.smooth_l1_loss(pred, F.layer_norm(target, target.shape[-1:]))
