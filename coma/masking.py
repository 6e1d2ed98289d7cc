"""Mask drawing for CoMA and MAE: the noise that ranks the units, and the masks it gives.

Paper: Li et al., "CoMA: Complementary Masking and Hierarchical Dynamic Multi-Window
Self-Attention in a Unified Pre-training Framework", Figure 2. Convention: True = hidden.

* :func:`step_noise` is the reproducible uniform noise of one training step: sample ``i`` of step
  ``s`` draws it from the 63-bit key :func:`mask_seed_for` ``(mask_seed, s, sample_idx)``, computed on
  the device by a counter-based hash (:func:`hashed_uniform`), so the masks depend neither on how the
  batch is split over processes nor on where it runs, and a resumed run draws the masks an
  uninterrupted one would.
* :func:`random_masks` hides the units of lowest noise: MAE's masking, binomial per position.
* :func:`complementary_masks` returns that mask ``M`` with its complement ``M' = ~M``: over the two
  branches every unit is hidden exactly once per iteration, so the count is exactly uniform.
"""
import hashlib
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.dist import get_rank

_MASK32 = 0xFFFFFFFF


def mask_seed_for(mask_seed: int, step: int, index: int) -> int:
    """A 63-bit key for ``(mask_seed, step, index)``, collision-free in practice.

    A hash, not arithmetic: ``(seed * P + step) * Q + index`` repeats itself as soon as ``index``
    reaches ``Q`` (ImageNet's 1.28M samples pass any small prime).
    """
    digest = hashlib.blake2b(f'{mask_seed}/{step}/{index}'.encode(), digest_size=8).digest()
    return int.from_bytes(digest, 'little') >> 1


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser on int64 tensors holding values below 2**32 (products wrap; the
    low 32 bits are kept)."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _MASK32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _MASK32
    return h ^ (h >> 16)


def hashed_uniform(keys: torch.Tensor, n: int) -> torch.Tensor:
    """``(B, n)`` float32 noise in [0, 1), a pure function of each row's 63-bit key and the column.

    Counter-based: computed where ``keys`` live (on the GPU, without a generator or a host draw), the
    same on every device and however the batch is split.

    Args:
        keys: ``(B,)`` int64 keys (from :func:`mask_seed_for`).
        n: columns (units per sample).

    Returns:
        ``(B, n)`` float32, 24 random bits each (as ``torch.rand``).
    """
    lo, hi = keys & _MASK32, (keys >> 32) & _MASK32
    col = torch.arange(n, device=keys.device, dtype=torch.int64)
    h = _fmix32((col * 0x9E3779B9 + 0x7F4A7C15) & _MASK32)[None, :]  # 1, n
    h = _fmix32(h ^ lo[:, None])
    h = _fmix32(((h + hi[:, None]) * 0x27D4EB2F) & _MASK32)
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))


def keyed_noise(keys: List[int], n: int, device: torch.device) -> torch.Tensor:
    """:func:`hashed_uniform` for host keys: one small copy to ``device`` (pinned and non-blocking on a
    GPU: no wait), the noise drawn there."""
    keys = torch.tensor(keys, dtype=torch.int64)
    if device.type == 'cuda':
        keys = keys.pin_memory().to(device, non_blocking=True)
    return hashed_uniform(keys.to(device), n)


def sample_indices(data_samples: Optional[Sequence]) -> Optional[List[int]]:
    """The ``sample_idx`` of every data sample's metainfo, or None if any is missing."""
    ids = [s.metainfo.get('sample_idx') for s in data_samples] if data_samples else []
    return [int(i) for i in ids] if ids and all(i is not None for i in ids) else None


def step_noise(mask_seed: int, step: int, data_samples: Optional[Sequence], batch: int, n: int,
               device: torch.device) -> torch.Tensor:
    """The ``(B, n)`` uniform noise of training step ``step``: keyed by ``(mask_seed, step, sample_idx)``
    when every data sample carries ``sample_idx``, else drawn from a generator seeded with
    ``(mask_seed, step, rank)`` (ranks as negative indices)."""
    ids = sample_indices(data_samples)
    if ids is not None:
        return keyed_noise([mask_seed_for(mask_seed, step, i) for i in ids], n, device)
    generator = torch.Generator(device=device).manual_seed(mask_seed_for(mask_seed, step, -1 - get_rank()))
    return torch.rand(batch, n, generator=generator, device=device)


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


def alternate_noise(mask_seed: int, epoch: int, data_samples: Optional[Sequence], n: int,
                    device: torch.device) -> torch.Tensor:
    """The ``(B, n)`` noise of the alternating schedule (:class:`~coma.models.algorithms.variants.CoMAAlternate`):
    in epoch ``2p`` sample ``i`` ranks its units by noise keyed ``(mask_seed, -1 - p, sample_idx)``, in
    epoch ``2p + 1`` by one minus it, so that the units of lowest noise (the hidden ones) in one epoch
    are those of highest in the next: over two epochs every unit is hidden once (ratio >= 0.5).

    Raises:
        RuntimeError: no epoch yet (negative) or a data sample without ``sample_idx``.
    """
    ids = sample_indices(data_samples)
    if epoch < 0 or ids is None:
        raise RuntimeError('the alternating mask schedule needs the epoch (model.set_epoch(e); the Runner\'s '
                           'MaskEpochHook calls it) and a sample_idx in every data sample\'s metainfo; got epoch '
                           f'{epoch} and data samples {list(data_samples or [])[:2]}')
    pair, phase = divmod(epoch, 2)
    # negative 'steps' (-1 - pair): a stream of its own, apart from the per-step one
    noise = keyed_noise([mask_seed_for(mask_seed, -1 - pair, i) for i in ids], n, device)
    return 1.0 - noise if phase else noise
