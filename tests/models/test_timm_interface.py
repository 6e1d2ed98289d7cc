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


def test_forward_intermediates_follows_timm():
    """timm's convention: ``(final map, intermediates)`` unless ``intermediates_only``; indices None (all),
    an int (the last n) or a list; ``norm`` applies each stage's output norm; the final map is
    ``forward_features``'s."""
    model = DyViT('nano').eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        maps = model(x)  # the mmdet contract: every out_indices stage, normed
        final, raw = model.forward_intermediates(x)
        normed = model.forward_intermediates(x, norm=True, intermediates_only=True)
        last2 = model.forward_intermediates(x, indices=2, norm=True, intermediates_only=True)
        only1 = model.forward_intermediates(x, indices=[-3], norm=True, stop_early=True)[1]
    assert len(raw) == 4 and [m.shape[1] for m in raw] == model.widths
    for a, b, r in zip(maps, normed, raw):
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a, r)  # raw stage outputs differ from normed ones
    torch.testing.assert_close(final, maps[-1])
    torch.testing.assert_close(final, model.forward_features(x))
    torch.testing.assert_close(last2[0], maps[2])
    torch.testing.assert_close(last2[1], maps[3])
    torch.testing.assert_close(only1[0], maps[1])
    with pytest.raises(ValueError, match='out of range'):
        model.forward_intermediates(x, indices=[4])


def test_timm_widths_checkpointing_and_unpooled_head():
    model = timm.create_model('dyvit_nano', num_classes=5).eval()
    assert model.num_features == model.head_hidden_size == 256 and isinstance(model.num_features, int)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        model.set_grad_checkpointing()
        assert all(stage.with_cp for stage in model.stages)
        torch.testing.assert_close(model(x), out)
        model.reset_classifier(0, '')
        assert model(x).shape == (2, 256, 2, 2)  # no pooling, no head: the normed map, normed per position
        unpooled = timm.create_model('dyvit_nano', num_classes=0, global_pool='').eval()
        assert unpooled(x).shape == (2, 256, 2, 2)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(0, 'max')


def test_prune_intermediate_layers_keeps_the_outputs_of_the_kept_stages():
    model = timm.create_model('dyvit_nano', num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        kept = model.prune_intermediate_layers([0, -3])
        after = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    assert kept == [0, 1] and len(model.stages) == 2 and model.stages[-1].downsample is None
    assert model.num_classes == 0
    assert not any(k.startswith(('stages.2', 'stages.3', 'norm3')) for k in model.state_dict())
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='every stage'):
        model.forward_masked(torch.randn(1, 3, 64, 64), torch.zeros(1, 2, 2, dtype=torch.bool))


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


def _backbone_checkpoint(path):
    """A backbone checkpoint as tools/convert_checkpoint.py writes it (output norms of every stage)."""
    from mmengine.registry import MODELS
    backbone = MODELS.build(dict(type='DyViT', arch='nano', out_indices=(0, 1, 2, 3)))
    torch.save(dict(state_dict=backbone.state_dict(), meta=dict(backbone=dict(type='DyViT', arch='nano'))), path)
    return backbone.state_dict()


@pytest.mark.parametrize('how', ['pretrained_cfg_overlay', 'checkpoint_path'])
@pytest.mark.parametrize('num_classes', [1000, 10])
def test_timms_loading_paths_read_a_converted_backbone(tmp_path, how, num_classes):
    """Strict on the backbone, the classifier head left at its initialisation (timm's rule for a new head)."""
    path = str(tmp_path / 'dyvit-n.pth')
    weights = _backbone_checkpoint(path)
    kwargs = dict(pretrained=True, pretrained_cfg_overlay=dict(file=path)) if how == 'pretrained_cfg_overlay' \
        else dict(checkpoint_path=path)
    torch.manual_seed(0)
    model = timm.create_model('dyvit_nano', num_classes=num_classes, **kwargs)
    torch.manual_seed(0)
    fresh = timm.create_model('dyvit_nano', num_classes=num_classes)
    own = model.state_dict()
    loaded = [k for k in weights if k in own]
    assert len(loaded) == len([k for k in own if not k.startswith(('head.', 'head_norm.'))])
    assert all(torch.equal(own[k], weights[k]) for k in loaded)
    assert all(torch.equal(own[k], fresh.state_dict()[k]) for k in own if k.startswith(('head.', 'head_norm.')))


def test_a_backbone_key_the_model_lacks_still_fails(tmp_path):
    path = str(tmp_path / 'bad.pth')
    weights = _backbone_checkpoint(path)
    torch.save(dict(state_dict=dict(weights, **{'stages.0.extra': torch.zeros(1)})), path)
    with pytest.raises(RuntimeError, match='stages.0.extra'):
        timm.create_model('dyvit_nano', checkpoint_path=path)


def test_pretrained_without_a_file_says_how_to_pass_one():
    with pytest.raises(ValueError, match='pretrained_cfg_overlay=dict.file=PATH'):
        timm.create_model('dyvit_nano', pretrained=True)


def test_a_fine_tuned_classifier_converts_to_timm_with_its_logits(tmp_path):
    """ImageClassifier checkpoint -> tools/convert_checkpoint.py --timm -> timm's two loading paths: the
    same logits as the classifier."""
    import os.path as osp
    import subprocess
    import sys

    from mmengine.config import Config
    from mmengine.registry import MODELS
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(root, 'imagenet_configs', 'finetune_dyvit-n_1xb32-coslr-10e_demo.py'))
    classifier = MODELS.build(cfg.model).eval()
    with torch.no_grad():  # a head that is not at its initialisation
        classifier.head.fc.weight.normal_(0, 0.1)
        classifier.head.norm.weight.uniform_(0.5, 1.5)
    src, dst = tmp_path / 'epoch_10.pth', tmp_path / 'dyvit-n_timm.pth'
    torch.save(dict(state_dict=classifier.state_dict(), meta=dict(cfg=cfg.pretty_text)), src)
    proc = subprocess.run([sys.executable, osp.join(root, 'tools', 'convert_checkpoint.py'), str(src), str(dst), '--timm'],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        expected = classifier(x, mode='tensor')
        for kwargs in (dict(checkpoint_path=str(dst)), dict(pretrained=True, pretrained_cfg_overlay=dict(file=str(dst), num_classes=10))):
            model = timm.create_model('dyvit_nano', num_classes=10, **kwargs).eval()
            torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
