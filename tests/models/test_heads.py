"""The pre-training heads own their targets and config-built losses."""
import pytest
import torch
from mmengine.registry import MODELS

import coma  # noqa: F401
from coma.models.heads import LatentPredictionHead, PixelReconstructionHead


def test_pixel_head_targets_and_their_inverse():
    units = torch.rand(2, 5, 12) * 3 + 1
    head = PixelReconstructionHead(norm_pix=True)
    target = head.target(units)
    torch.testing.assert_close(target.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(head.to_pixels(target, units), units, atol=1e-4, rtol=1e-4)
    raw = PixelReconstructionHead(norm_pix=False)
    assert raw.target(units) is units and raw.to_pixels(units, units) is units
    # the loss is the mean squared error against the (normalised) target
    pred = torch.randn(2, 5, 12)
    torch.testing.assert_close(head.loss(pred, units), ((pred - target) ** 2).mean())


def test_latent_head_weight_and_monitor_only():
    pred, target = torch.randn(2, 4, 8, requires_grad=True), torch.randn(2, 4, 8)
    flat = target.reshape(-1, 8)  # the default distance: cosine to the batch-standardised targets
    standard = (target - flat.mean(0)) / flat.var(0, unbiased=False).add(1e-6).sqrt()
    cos = (1 - torch.nn.functional.cosine_similarity(pred, standard, dim=-1)).mean()
    weighted = LatentPredictionHead(loss_weight=2.0).loss(pred, target)
    torch.testing.assert_close(weighted, 2 * cos)
    monitor = LatentPredictionHead(loss_weight=0.0)
    assert monitor.monitor_only
    value = monitor.loss(pred, target)
    assert not value.requires_grad
    torch.testing.assert_close(value, cos.detach())
    with pytest.raises(ValueError, match='loss_weight'):
        LatentPredictionHead(loss_weight=-1)


def test_losses_are_built_from_config():
    head = MODELS.build(dict(type='LatentPredictionHead', loss=dict(type='LatentPredictionLoss', kind='smooth_l1')))
    assert head.loss_module.kind == 'smooth_l1'
    model = MODELS.build(dict(type='CoMA', backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
                              decoder=dict(type='CoMADecoder', embed_dim=32, depth=1, num_heads=2),
                              latent_head=dict(loss=dict(type='LatentPredictionLoss', kind='smooth_l1'),
                                               loss_weight=0.5),
                              head=dict(norm_pix=False)))
    assert model.latent_head.loss_module.kind == 'smooth_l1' and model.lambda_lat == 0.5
    assert not model.head.norm_pix
    assert model.monitor_only() == ('loss_eval',)
    quiet = MODELS.build(dict(type='CoMA', backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
                              decoder=dict(type='CoMADecoder', embed_dim=32, depth=1, num_heads=2),
                              latent_head=dict(loss_weight=0.0)))
    assert quiet.monitor_only() == ('loss_eval', 'loss_lat')
    # the heads hold no state: checkpoints keep their keys
    assert not [k for k in model.state_dict() if k.startswith(('head.', 'latent_head.'))]


def test_batch_normalised_latent_targets_give_collapse_no_reward():
    from coma.models.losses import LatentPredictionLoss
    loss = LatentPredictionLoss(kind='cosine', target_norm='batch')
    # an encoder that gives every unit the same latent: the raw cosine loss is 0 for a prediction
    # of that latent (collapse rewarded); standardised targets are all zero, and no prediction scores
    constant = torch.randn(1, 1, 8).expand(3, 5, 8)
    assert (1 - torch.nn.functional.cosine_similarity(constant, constant, -1)).mean() < 1e-6
    for pred in (constant, torch.randn(3, 5, 8)):
        torch.testing.assert_close(loss(pred, constant), torch.tensor(1.0))
    # informative targets: each channel standardised over all the batch's units, then the cosine
    target = torch.randn(3, 5, 8) * 4 + 2
    flat = target.reshape(-1, 8)
    standard = (target - flat.mean(0)) / flat.var(0, unbiased=False).add(1e-6).sqrt()
    pred = torch.randn(3, 5, 8)
    torch.testing.assert_close(loss(pred, target), (1 - torch.nn.functional.cosine_similarity(pred, standard, -1)).mean())
    torch.testing.assert_close(loss(standard, target), torch.tensor(0.0), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='target_norm'):
        LatentPredictionLoss(target_norm='layer')


def test_instance_normalised_latent_targets_give_image_level_latents_no_reward():
    from coma.models.losses import LatentPredictionLoss
    instance = LatentPredictionLoss(kind='cosine', target_norm='instance')
    # image-level latents: every unit of an image the same, images different. 'batch' still rewards
    # predicting them (each image's latent is a distinct, non-zero standardised target); 'instance'
    # leaves all-zero targets, which no prediction matches
    image_level = torch.randn(3, 1, 8).expand(3, 5, 8)
    flat = image_level.reshape(-1, 8)
    batch_standard = (image_level - flat.mean(0)) / flat.var(0, unbiased=False).add(1e-6).sqrt()
    assert LatentPredictionLoss(kind='cosine', target_norm='batch')(batch_standard, image_level) < 1e-5
    for pred in (image_level, torch.randn(3, 5, 8)):
        torch.testing.assert_close(instance(pred, image_level), torch.tensor(1.0))
    # informative targets: each channel standardised over each image's own units, then the cosine;
    # an image-level offset added to the targets changes nothing
    target = torch.randn(3, 5, 8) * 4 + 2
    var, mean = torch.var_mean(target, dim=1, correction=0, keepdim=True)
    standard = (target - mean) / (var + 1e-6).sqrt()
    pred = torch.randn(3, 5, 8)
    expected = (1 - torch.nn.functional.cosine_similarity(pred, standard, -1)).mean()
    torch.testing.assert_close(instance(pred, target), expected)
    torch.testing.assert_close(instance(pred, target + torch.randn(3, 1, 8) * 10), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(instance(standard, target), torch.tensor(0.0), atol=1e-5, rtol=0)
    kw = dict(type='CoMA', backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
              decoder=dict(type='CoMADecoder', embed_dim=32, depth=1, num_heads=2),
              latent_head=dict(loss=dict(type='LatentPredictionLoss', target_norm='instance')))
    assert MODELS.build(kw).latent_head.loss_module.target_norm == 'instance'


def test_coma_standardises_latent_targets_by_default():
    kw = dict(type='CoMA', backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
              decoder=dict(type='CoMADecoder', embed_dim=32, depth=1, num_heads=2))
    assert MODELS.build(kw).latent_head.loss_module.target_norm == 'batch'
    with pytest.raises(ValueError, match='target_norm'):
        MODELS.build(dict(kw, latent_head=dict(loss=dict(type='LatentPredictionLoss', target_norm='none'))))
