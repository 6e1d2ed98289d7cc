"""ImageClassifier: forward/backward per variant, linear probing, loading converted checkpoints."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS
from mmengine.structures import BaseDataElement

import coma  # noqa: F401
from coma.models.backbones.dyvit import ARCH_SETTINGS

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FT_CFG = osp.join(ROOT, 'imagenet_configs', 'finetune_dyvit-n_1xb32-coslr-10e_demo.py')
LP_CFG = osp.join(ROOT, 'imagenet_configs', 'linprobe_dyvit-n_1xb32-coslr-20e_demo.py')
PRE_CFG = osp.join(ROOT, 'imagenet_configs', 'coma_dyvit-n_1xb32-coslr-4e_demo.py')
NUM_CLASSES = 10


def batch(n=4, size=64, num_classes=NUM_CLASSES):
    inputs = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8)
    samples = [BaseDataElement(gt_label=torch.tensor([i % num_classes])) for i in range(n)]
    return dict(inputs=list(inputs), data_samples=samples)


def build(cfg_path, **model_overrides):
    cfg = Config.fromfile(cfg_path)
    cfg.model.update(model_overrides)
    return MODELS.build(cfg.model), cfg


BACKBONES = [dict(type='DyViT', arch=a, out_indices=(3,), drop_path_rate=0.1) for a in ARCH_SETTINGS] + \
    [dict(type='ViT', arch=dict(embed_dim=64, depth=2, num_heads=2), patch_size=16, unit=32)]


@pytest.mark.parametrize('backbone', BACKBONES, ids=[b.get('arch') if isinstance(b['arch'], str) else 'vit'
                                                     for b in BACKBONES])
def test_forward_backward_every_variant(backbone):
    model = MODELS.build(dict(type='ImageClassifier', backbone=backbone, num_classes=NUM_CLASSES,
                              mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1),
                              random_erasing=dict(probability=0.25, mode='pixel'),
                              data_preprocessor=dict(type='ImgDataPreprocessor', mean=[128] * 3, std=[64] * 3)))
    model.train()
    data = model.data_preprocessor(batch(size=67), training=True)  # odd size: padded inside the backbone
    loss = model(**data, mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad
    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch(n=3, size=64)), mode='predict')
    assert len(out) == 3 and out[0].pred_score.shape == (NUM_CLASSES,)
    assert torch.allclose(out[0].pred_score.sum(), torch.tensor(1.0))
    assert out[0].pred_label.item() == out[0].pred_score.argmax().item()


def test_mixup_needs_an_even_batch():
    model, _ = build(FT_CFG)
    data = model.data_preprocessor(batch(n=3), training=True)
    with pytest.raises(ValueError, match='even batch, got 3'):
        model(**data, mode='loss')


def test_labels_out_of_range_fail_clearly():
    model, _ = build(FT_CFG, mixup=None)
    data = model.data_preprocessor(batch(n=2, num_classes=20), training=True)
    data['data_samples'][1].gt_label = torch.tensor([17])
    with pytest.raises(ValueError, match=r'outside \[0, 10\)'):
        model(**data, mode='loss')


def test_linear_probe_freezes_the_backbone():
    model, cfg = build(LP_CFG)
    model.init_weights()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    trained = {id(p) for g in wrapper.optimizer.param_groups for p in g['params'] if p.requires_grad}
    assert trained == {id(p) for p in model.head.parameters()}
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    assert not model.backbone.training and model.head.training
    for _ in range(3):
        data = model.data_preprocessor(batch(n=8), training=True)
        wrapper.update_params(model(**data, mode='loss')['loss'])
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith('head.') for k in changed), changed
    assert 'head.fc.weight' in changed and 'head.norm.running_mean' in changed  # BN statistics of the head
    assert not any(k.startswith('head.norm.weight') for k in after)  # BatchNorm without affine


def test_finetune_config_loads_a_converted_checkpoint(tmp_path):
    from coma.models.checkpoint import convert_pretrain_checkpoint as convert
    pre = MODELS.build(Config.fromfile(PRE_CFG).model)
    torch.save(dict(state_dict=pre.state_dict(), meta=dict(cfg=Config.fromfile(PRE_CFG).pretty_text)),
               tmp_path / 'pre.pth')
    summary = convert(str(tmp_path / 'pre.pth'), str(tmp_path / 'bb.pth'))
    model, _ = build(FT_CFG)
    model.backbone.init_cfg['checkpoint'] = str(tmp_path / 'bb.pth')
    model.init_weights()
    got, want = model.backbone.state_dict(), pre.backbone.state_dict()
    assert summary['tensors'] == len(want)
    assert all(torch.equal(got[k], want[k]) for k in want), 'weights differ after loading'
    # only the output norms of stages the pre-training did not use are missing; nothing unexpected
    assert all(k.startswith(('norm0', 'norm1', 'norm2')) for k in summary['missing'])
    # the wrong architecture fails, naming keys and shapes
    model, _ = build(FT_CFG, backbone=dict(type='DyViT', arch='tiny', out_indices=(3,),
                                           init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'bb.pth'))))
    with pytest.raises(ValueError, match=r'shape mismatches \[.*checkpoint \(32'):
        model.init_weights()


def test_random_erasing_draws_its_noise_where_the_batch_is(monkeypatch):
    """timm's RandomErasing makes each box's noise on its ``device``; the classifier sets it to the
    batch's, so a GPU batch is not filled box by box from host memory (checked with a ``meta`` batch)."""
    from timm.data import random_erasing as erasing
    model = MODELS.build(dict(type='ImageClassifier', backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
                              num_classes=4, random_erasing=dict(probability=1.0, mode='pixel')))
    devices, real = [], erasing._get_pixels

    def spy(per_pixel, rand_color, patch_size, dtype=torch.float32, device='cuda'):
        devices.append(torch.device(device))
        return real(per_pixel, rand_color, patch_size, dtype=dtype, device=device)
    monkeypatch.setattr(erasing, '_get_pixels', spy)
    out = model.erase(torch.zeros(2, 3, 32, 32, device='meta'))
    assert out.device.type == 'meta' and len(devices) == 2 and all(d.type == 'meta' for d in devices)
