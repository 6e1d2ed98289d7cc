"""Layer-wise lr decay: exact lr and weight decay of named parameters."""
import os.path as osp

import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import coma  # noqa: F401
from coma.models import DyViT

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

LR, WD, RATE = 1e-3, 0.05, 0.8


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = DyViT('nano')  # depths (2, 2, 6, 2): 12 blocks, num_layers = 13
        self.neck = nn.Linear(4, 4)


def groups_by_name(**paramwise):
    model = Detector()
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=LR, weight_decay=WD),
        constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=RATE, **paramwise)))
    out = {}
    for g in wrapper.optimizer.param_groups:
        for name in g['param_names']:
            out[name] = (g['lr'], g['weight_decay'])
    return model, out


@pytest.mark.parametrize('name,layer,decay', [
    ('backbone.patch_embed.weight', 0, True),
    ('backbone.patch_embed.bias', 0, False),
    ('backbone.stages.0.blocks.0.attn.q.weight', 1, True),
    ('backbone.stages.0.blocks.1.mlp.fc1.weight', 2, True),
    ('backbone.stages.0.downsample.reduction.weight', 3, True),   # with the first block after it
    ('backbone.stages.1.blocks.0.attn.proj.weight', 3, True),
    ('backbone.stages.2.blocks.5.norm1.weight', 10, False),
    ('backbone.stages.2.blocks.5.attn.coarse_bias_table', 10, False),
    ('backbone.stages.2.blocks.5.attn.gate.weight', 10, False),
    ('backbone.stages.3.blocks.1.mlp.fc2.weight', 12, True),
    ('backbone.norm3.weight', 13, False),
    ('neck.weight', 13, True),
])
def test_exact_lr_and_weight_decay(name, layer, decay):
    model, groups = groups_by_name()
    assert model.backbone.num_layers == 13
    lr, wd = groups[name]
    assert lr == pytest.approx(LR * RATE ** (13 - layer))
    assert wd == (WD if decay else 0.0)


def test_every_trainable_parameter_is_in_one_group():
    model, groups = groups_by_name()
    assert set(groups) == {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize('algo', ['CoMA', 'MAE'])
def test_pretraining_groups_match_the_old_recipe(algo):
    """The pre-training configs' weight-decay exclusions come from the models'
    ``no_weight_decay()`` (through the layer-decay constructor at rate 1). Every trainable parameter
    gets the lr and weight decay that the old ``paramwise_cfg`` (norm/bias multipliers and the
    custom keys below) gave it."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'imagenet_configs', f'{algo.lower()}_dyvit-n_1xb32-coslr-4e_demo.py'))
    model = MODELS.build(cfg.model)
    old = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
               paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                                  custom_keys={'mask_token': dict(decay_mult=0.0), 'bias_table': dict(decay_mult=0.0),
                                               '.gate.': dict(decay_mult=0.0)}))
    new = dict(old, paramwise_cfg=None, constructor=cfg.optim_wrapper.constructor)
    new.pop('paramwise_cfg')

    def settings(wrapper_cfg):
        groups = build_optim_wrapper(model, wrapper_cfg).optimizer.param_groups
        return {id(p): (g['lr'], g['weight_decay']) for g in groups for p in g['params']}
    before, after = settings(old), settings(new)
    names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    assert set(after) == set(names)
    wrong = [names[k] for k in names if before[k] != after[k]]
    assert not wrong, wrong[:10]
    assert any(wd == 0 for _, wd in after.values()) and any(wd > 0 for _, wd in after.values())


def test_backbone_lr_mult_scales_the_backbone_only():
    """``backbone_lr_mult`` multiplies every backbone lr (on top of layer decay); heads keep the base lr,
    also those in the last layer, which share a group with the backbone's output norm only when the
    multiplier is 1 (the grouping, and so resumed optimizer states, are unchanged by default)."""
    _, plain = groups_by_name()
    model, scaled = groups_by_name(backbone_lr_mult=0.1)
    assert set(scaled) == set(plain)
    for name, (lr, wd) in scaled.items():
        want = plain[name][0] * (0.1 if name.startswith('backbone.') else 1.0)
        assert lr == pytest.approx(want), name
        assert wd == plain[name][1], name
    assert scaled['neck.weight'][0] == pytest.approx(LR) and scaled['backbone.norm3.weight'][0] == pytest.approx(LR * 0.1)


def test_unknown_paramwise_keys_fail_naming_them():
    with pytest.raises(KeyError, match='custom_keys'):
        groups_by_name(custom_keys={'backbone': dict(lr_mult=0.1)})
