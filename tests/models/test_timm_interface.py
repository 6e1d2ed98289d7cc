"""DyViT's timm interface: timm's builder, forward_features / forward_head /
forward_intermediates, no head on the mmengine backbone, one source for weight decay, init by
module name and the drop-path split."""
import warnings

import pytest
import timm
import torch

import coma  # noqa: F401
from coma.models import DyViT
from coma.models.timm_models import TimmDyViT


def test_classifier_is_features_then_head():
    model = timm.create_model('dyvit_nano', num_classes=7).eval()
    assert isinstance(model, TimmDyViT) and model.pretrained_cfg['classifier'] == 'head'
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 256, 2, 3)
        torch.testing.assert_close(model(x), model.forward_head(feats))
        assert model.forward_head(feats, pre_logits=True).shape == (2, 256)
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3


def test_features_only_goes_through_timm_feature_getter():
    model = timm.create_model('dyvit_nano', features_only=True, out_indices=(1, 2))
    assert type(model).__name__ == 'FeatureGetterNet'
    assert model.feature_info.channels() == [64, 128] and model.feature_info.reduction() == [8, 16]
    outs = model(torch.randn(1, 3, 70, 70))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 9, 9), (1, 128, 5, 5)]


def test_forward_intermediates_matches_forward():
    model = DyViT('nano').eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
        last, inter = model.forward_intermediates(x, intermediates_only=False)
        only2 = model.forward_intermediates(x, indices=(2,))
    for a, b in zip(maps, inter):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(last, maps[-1])
    torch.testing.assert_close(only2[0], maps[2])
    with pytest.raises(ValueError, match='out_indices'):
        DyViT('nano', out_indices=(3,)).forward_intermediates(x, indices=(0,))


def test_backbone_has_no_head_and_the_old_flag_warns():
    assert not hasattr(DyViT('nano'), 'head')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model = DyViT('nano', num_classes=4)
    assert isinstance(model, TimmDyViT) and model.num_classes == 4
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_no_weight_decay_lists_tables_gates_and_1d_parameters():
    model = DyViT('nano')
    names = model.no_weight_decay()
    params = dict(model.named_parameters())
    assert all(params[n].ndim <= 1 or 'bias_table' in n or '.gate.' in n for n in names)
    assert any('coarse_bias_table' in n for n in names) and any(n.endswith('.gate.weight') for n in names)
    assert not any(n.endswith('qkv.weight') for n in names)


def test_init_by_module_name_and_drop_path_split():
    model = DyViT('nano', drop_path_rate=0.3)
    for name, m in model.named_modules():
        if name.endswith('.gate'):
            assert torch.count_nonzero(m.weight) == 0
        elif isinstance(m, torch.nn.Linear):
            assert m.weight.std() > 0 and (m.bias is None or torch.count_nonzero(m.bias) == 0)
    rates = [getattr(b.drop_path, 'drop_prob', 0.0) for s in model.stages for b in s.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, sum(model.arch['depths'])))
