"""timm entry points: ``timm.create_model('dyvit_tiny')`` (a classifier) and
``timm.create_model('dyvit_tiny', features_only=True)`` (multi-scale maps), built by timm's own
``build_model_with_cfg`` with a ``feature_cfg``, as timm's Hiera is.
"""
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .backbones.dyvit import ARCH_SETTINGS, NUM_STAGES, STEM_STRIDE, DyViT


class TimmDyViT(DyViT):
    """DyViT with timm's classifier interface: ``forward_head`` (global average pooling, LayerNorm,
    linear) over ``forward_features`` (the last stage's normed map). The backbone itself
    (:class:`DyViT`, the mmengine one) carries no head.

    Args:
        arch: as :class:`DyViT`.
        num_classes: classes of the linear head (0: no head, :meth:`forward_head` returns the
            normed pooled features).
        global_pool: ``'avg'``, or ``''`` (no pooling: the head reads every position of the map).
        in_chans: image channels (timm's name).
        out_indices: stages with an output norm, which :meth:`forward_intermediates` can return
            (default: the last one, what the classifier reads).
        feature_stages: overrides ``out_indices`` (timm's builder keeps ``out_indices`` of a
            ``features_only`` model for its wrapper; the entry points pass them on as this).
        **kwargs: the other :class:`DyViT` arguments.
    """

    def __init__(self, arch: str = 'tiny', num_classes: int = 1000, in_chans: int = 3, global_pool: str = 'avg',
                 out_indices: Sequence[int] = (NUM_STAGES - 1,), feature_stages: Optional[Sequence[int]] = None,
                 **kwargs: Any) -> None:
        super().__init__(arch, in_channels=kwargs.pop('in_channels', in_chans),
                         out_indices=out_indices if feature_stages is None else feature_stages, **kwargs)
        self.head_norm = nn.LayerNorm(self.num_features)
        self.reset_classifier(num_classes, global_pool)
        self._register_load_state_dict_pre_hook(self._read_backbone_checkpoint)
        # timm's feature metadata covers every stage (forward_intermediates returns any of them)
        self.feature_info = [dict(num_chs=self.widths[i], reduction=STEM_STRIDE * 2 ** i, module=f'stages.{i}')
                             for i in range(NUM_STAGES)]

    def _read_backbone_checkpoint(self, state_dict, prefix, *args) -> None:
        """Lets ``load_state_dict`` (timm's ``pretrained=True`` with a ``file``, and ``checkpoint_path=``)
        read a backbone checkpoint (``tools/convert_checkpoint.py``'s output): when it holds no classifier
        (``head.*`` and ``head_norm.*`` all absent), the head keeps its initialisation and the output norms
        of stages this model does not norm are dropped; the backbone's own keys stay strict."""
        head = [k for k in self.state_dict() if k.startswith(('head.', 'head_norm.'))]
        if any(prefix + k in state_dict for k in head) or not any(k.startswith(prefix) for k in state_dict):
            return
        for key, value in self.state_dict().items():
            if key.startswith(('head.', 'head_norm.')):
                state_dict[prefix + key] = value
        unused = [f'norm{i}' for i in range(NUM_STAGES) if not hasattr(self, f'norm{i}')]
        for key in [k for k in state_dict if k.startswith(prefix) and k[len(prefix):].split('.')[0] in unused]:
            del state_dict[key]
        print_log(f'{type(self).__name__}: a backbone checkpoint, the classifier head keeps its initialisation',
                  logger='current')

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new linear head for ``num_classes`` (0: none), initialised as the backbone's linears;
        ``global_pool``: ``'avg'`` or ``''`` (None: unchanged)."""
        if global_pool is not None:
            if global_pool not in ('avg', ''):
                raise ValueError(f"TimmDyViT: global_pool 'avg' or '' only, got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, C, h, w)`` last-stage map -> ``(B, num_classes)`` logits (or the normed pooled features);
        without pooling, ``(B, num_classes or C, h, w)``."""
        if not self.global_pool:  # per position, channels last for the norm and the head
            x = self.head_norm(x.permute(0, 2, 3, 1))
            return (x if pre_logits else self.head(x)).permute(0, 3, 1, 2)
        x = self.head_norm(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, num_classes)`` logits."""
        return self.forward_head(self.forward_features(x))


DyViT.classifier_cls = TimmDyViT


def _pretrained_file(kwargs: dict) -> Optional[str]:
    """The ``file`` (or ``state_dict``) of the ``pretrained_cfg`` / ``pretrained_cfg_overlay`` passed to
    ``timm.create_model``, if any."""
    for cfg in (kwargs.get('pretrained_cfg_overlay'), kwargs.get('pretrained_cfg')):
        cfg = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
        if isinstance(cfg, dict) and (cfg.get('file') or cfg.get('state_dict') is not None):
            return cfg.get('file') or '<state_dict>'
    return None


def _create_dyvit(variant: str, arch: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    if pretrained and _pretrained_file(kwargs) is None:
        raise ValueError(f'{variant}: no pretrained weights are downloaded; pass a converted checkpoint: '
                         f"timm.create_model({variant!r}, pretrained=True, pretrained_cfg_overlay=dict(file=PATH)) "
                         f'or checkpoint_path=PATH (tools/convert_checkpoint.py makes it)')
    if kwargs.get('features_only'):
        # the output norms of the requested stages are built; timm's FeatureGetterNet prunes the stages
        # after the last one and calls forward_intermediates with the same indices, normed
        out_indices = tuple(kwargs.pop('out_indices', range(NUM_STAGES)))
        kwargs.pop('feature_cls', None)
        return build_model_with_cfg(TimmDyViT, variant, pretrained, arch=arch, feature_stages=out_indices,
                                    feature_cfg=dict(out_indices=out_indices, feature_cls='getter', norm=True),
                                    **dict(kwargs, num_classes=0))
    return build_model_with_cfg(TimmDyViT, variant, pretrained, arch=arch, **kwargs)


#: timm's pretrained configs: no weights to download (``url`` empty), the ImageNet input contract
default_cfgs = generate_default_cfgs({
    f'dyvit_{arch}': dict(url='', num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7), crop_pct=0.875,
                          mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, first_conv='patch_embed',
                          classifier='head', license='apache-2.0')
    for arch in ARCH_SETTINGS})


def _entry(arch: str):
    variant = f'dyvit_{arch}'

    def create(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _create_dyvit(variant, arch, pretrained, **kwargs)
    create.__name__ = create.__qualname__ = variant
    create.__doc__ = f'DyViT-{arch[0].upper()} ({arch}): ``timm.create_model({variant!r}, ...)``.'
    create.__module__ = __name__
    return register_model(create)


dyvit_nano, dyvit_tiny, dyvit_small, dyvit_base = (_entry(arch) for arch in ARCH_SETTINGS)
