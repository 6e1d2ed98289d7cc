"""Complementary masks are exactly uniform (SPEC section 2, Figure 2); random masks are not."""
import pytest
import torch

from coma.masking import complementary_masks, num_hidden, random_masks


@pytest.mark.parametrize('grid,ratio', [((7, 7), 0.6), ((4, 6), 0.75), ((3, 3), 0.5)])
def test_complementary_masks_are_exactly_uniform(grid, ratio):
    k = num_hidden(grid, ratio)
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        mask, comp = complementary_masks(8, grid, ratio, generator=g)
        assert mask.shape == comp.shape == (8, *grid) and mask.dtype == torch.bool
        # every unit hidden exactly once across the two branches, in every iteration and sample
        assert torch.equal(mask.int() + comp.int(), torch.ones(8, *grid, dtype=torch.int))
        assert (mask.flatten(1).sum(1) == k).all()


def test_frequency_over_1600_iterations():
    """Figure 2: per-unit masking counts over 1,600 iterations at ratio 0.6."""
    g = torch.Generator().manual_seed(0)
    comp_counts = torch.zeros(7, 7)
    rand_counts = torch.zeros(7, 7)
    for _ in range(1600):
        mask, comp = complementary_masks(1, (7, 7), 0.6, generator=g)
        comp_counts += (mask.int() + comp.int())[0]
        rand_counts += random_masks(1, (7, 7), 0.6, generator=g)[0].int()
    assert (comp_counts == 1600).all()
    assert rand_counts.max() - rand_counts.min() > 20  # binomial spread: hot and cold units
    assert abs(rand_counts.sum() / (1600 * 49) - num_hidden((7, 7), 0.6) / 49) < 1e-6


def test_the_adaptive_models_own_masks_are_binomial_per_unit():
    """What the gradient sees: M_t's own mask hides each unit with probability k/N at every iteration,
    independently, so over 1,600 iterations a unit's count is Binomial(1600, 29/49): the spread across
    units must match (a mask stuck on some units, or one that never changes, fails)."""
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(49)
    for _ in range(1600):
        mask, _ = complementary_masks(1, (7, 7), 0.6, generator=g)
        counts += mask.flatten().float()
    p = num_hidden((7, 7), 0.6) / 49
    assert abs(float(counts.mean()) - 1600 * p) < 1e-3  # every iteration hides exactly k units
    ratio = float(counts.var()) / (1600 * p * (1 - p))  # chi-square with 48 dof over 48: 99.9% in [0.5, 1.7]
    assert 0.5 < ratio < 1.7, (ratio, counts)


def test_masks_are_reproducible_with_a_generator():
    a = random_masks(4, (7, 7), 0.6, generator=torch.Generator().manual_seed(3))
    b = random_masks(4, (7, 7), 0.6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize('ratio', [0.0, 1.0, 1.5, 0.01])
def test_bad_ratios(ratio):
    with pytest.raises(ValueError, match='mask ratio'):
        random_masks(1, (3, 3), ratio)


def test_a_batchs_mask_noise_is_one_call_without_generators(monkeypatch):
    """256 samples carrying ``sample_idx``: no ``torch.Generator`` is made, one hash kernel chain draws the
    whole ``(B, n)`` noise from one tensor of keys; each row depends only on its sample (reproducible per
    sample, and so on resume and across ranks)."""
    from mmengine.structures import BaseDataElement

    from coma import masking
    made = []
    real = torch.Generator
    monkeypatch.setattr(torch, 'Generator', lambda *a, **k: made.append(1) or real(*a, **k))
    samples = [BaseDataElement(metainfo=dict(sample_idx=i)) for i in range(256)]
    noise = masking.step_noise(7, 3, samples, 256, 49, torch.device('cpu'))
    assert noise.shape == (256, 49) and not made
    alone = masking.step_noise(7, 3, samples[5:6], 1, 49, torch.device('cpu'))
    assert torch.equal(alone[0], noise[5])
