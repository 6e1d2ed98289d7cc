"""Mask sampling for CoMA and MAE (pure functions).

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework", Figure 2. Convention: True = hidden.

* :func:`complementary_masks` draws one mask ``M`` per sample and returns it with its complement
  ``M' = ~M``. Over the two branches every unit is hidden exactly once per iteration, so the
  per-position masking count is exactly uniform.
* :func:`random_masks` is MAE's independent per-iteration masking: the count is binomial.
"""
from typing import Optional, Tuple

import torch


def num_hidden(grid: Tuple[int, int], ratio: float) -> int:
    """``round(ratio * gh * gw)``: the hidden units per sample.

    Raises:
        ValueError: a ratio outside (0, 1) or one that hides all or none of the units.
    """
    n = grid[0] * grid[1]
    k = int(round(ratio * n))
    if not 0.0 < ratio < 1.0 or not 0 < k < n:
        raise ValueError(f'mask ratio {ratio} over {grid[0]}x{grid[1]} units hides {k} of {n}; '
                         f'need 0 < ratio < 1 hiding at least one unit and keeping at least one')
    return k


def random_masks(batch: int, grid: Tuple[int, int], ratio: float, generator: Optional[torch.Generator] = None,
                 device: Optional[torch.device] = None, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """MAE-style random masks with exactly ``round(ratio * gh * gw)`` hidden units per sample.

    Args:
        batch: B.
        grid: ``(gh, gw)`` units.
        ratio: hidden fraction.
        generator: optional RNG (on ``device``).
        device: where the mask lives.
        noise: optional ``(B, gh*gw)`` uniform noise to rank the units by (lowest hidden) instead
            of drawing it.

    Returns:
        ``(B, gh, gw)`` bool, True = hidden.
    """
    k = num_hidden(grid, ratio)
    n = grid[0] * grid[1]
    if noise is None:
        noise = torch.rand(batch, n, generator=generator, device=device)
    elif noise.shape != (batch, n):
        raise ValueError(f'noise must be ({batch}, {n}), got {tuple(noise.shape)}')
    device = noise.device
    hidden = noise.argsort(dim=1)[:, :k]
    mask = torch.zeros(batch, n, dtype=torch.bool, device=device)
    return mask.scatter_(1, hidden, True).view(batch, *grid)


def complementary_masks(batch: int, grid: Tuple[int, int], ratio: float,
                        generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None,
                        noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """A random mask and its complement.

    Args:
        batch: B.
        grid: ``(gh, gw)`` units.
        ratio: hidden fraction of the first mask (the adaptive model's).
        generator: optional RNG (on ``device``).
        device: where the masks live.
        noise: as in :func:`random_masks`.

    Returns:
        ``(mask, complement)``, both ``(B, gh, gw)`` bool with True = hidden;
        ``complement == ~mask``.
    """
    mask = random_masks(batch, grid, ratio, generator, device, noise)
    return mask, ~mask
