"""timm entry points: ``timm.create_model('dyvit_tiny', features_only=True)`` and friends."""
from typing import Any

from timm.models import register_model
from timm.models._features import FeatureInfo

from .backbones.dyvit import NUM_STAGES, DyViT


def _create_dyvit(arch: str, pretrained: bool = False, **kwargs: Any) -> DyViT:
    if pretrained:
        raise ValueError(f'dyvit_{arch}: no pretrained weights are downloaded; load a converted CoMA '
                         f'checkpoint with coma.models.checkpoint.load_backbone_checkpoint')
    for key in ('pretrained_cfg', 'pretrained_cfg_overlay', 'cache_dir'):
        kwargs.pop(key, None)
    if kwargs.pop('features_only', False):
        out_indices = tuple(kwargs.pop('out_indices', range(NUM_STAGES)))
        model = DyViT(arch, out_indices=out_indices, **kwargs)
        model.feature_info = FeatureInfo(model.feature_info, tuple(range(len(out_indices))))
        return model
    return DyViT(arch, out_indices=(NUM_STAGES - 1,), num_classes=kwargs.pop('num_classes', 1000), **kwargs)


@register_model
def dyvit_nano(pretrained: bool = False, **kwargs: Any) -> DyViT:
    return _create_dyvit('nano', pretrained, **kwargs)


@register_model
def dyvit_tiny(pretrained: bool = False, **kwargs: Any) -> DyViT:
    return _create_dyvit('tiny', pretrained, **kwargs)


@register_model
def dyvit_small(pretrained: bool = False, **kwargs: Any) -> DyViT:
    return _create_dyvit('small', pretrained, **kwargs)


@register_model
def dyvit_base(pretrained: bool = False, **kwargs: Any) -> DyViT:
    return _create_dyvit('base', pretrained, **kwargs)
