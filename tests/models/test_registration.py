"""DyViT is reachable from mmengine, mmdet, mmseg and timm."""
import pytest
import torch

import coma  # noqa: F401


@pytest.mark.parametrize('package', ['mmengine', 'mmdet', 'mmseg'])
def test_registries_build_dyvit(package):
    registry = __import__(f'{package}.registry', fromlist=['MODELS']).MODELS
    model = registry.build(dict(type='DyViT', arch='nano'))
    assert type(model).__name__ == 'DyViT'


@pytest.mark.parametrize('name', ['dyvit_nano', 'dyvit_tiny', 'dyvit_small', 'dyvit_base'])
def test_timm_features_only(name):
    import timm
    model = timm.create_model(name, features_only=True).eval()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == model.feature_info.channels()


def test_timm_classifier_and_no_downloads():
    import timm
    model = timm.create_model('dyvit_nano', num_classes=7)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    with pytest.raises(ValueError, match='no pretrained weights are downloaded'):
        timm.create_model('dyvit_nano', pretrained=True)
