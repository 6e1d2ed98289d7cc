"""DyViT inside mmdet's Mask R-CNN and mmseg's UperNet: one loss step and a backward pass on CPU."""
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope

import coma  # noqa: F401

NANO = dict(type='DyViT', arch='nano', out_indices=(0, 1, 2, 3))
WIDTHS = [32, 64, 128, 256]


def package_config(tmp_path, base):
    """A config inheriting a package's config (``mmdet::...``), as our configs do."""
    path = tmp_path / 'cfg.py'
    path.write_text(f"_base_ = '{base}'\n")
    return Config.fromfile(str(path))


def test_mask_rcnn_loss_step(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    init_default_scope('mmdet')
    cfg = package_config(tmp_path, 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    cfg.model.backbone = NANO
    cfg.merge_from_dict(dict(model=dict(neck=dict(in_channels=WIDTHS))))
    model = MODELS.build(cfg.model)
    model.init_weights()
    data = demo_mm_inputs(2, [(3, 160, 224), (3, 200, 150)], num_classes=80, with_mask=True)
    batch = model.data_preprocessor(data, True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_upernet_loss_step(tmp_path):
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    init_default_scope('mmseg')
    cfg = package_config(tmp_path, 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py')
    cfg.model.backbone = NANO
    cfg.merge_from_dict(dict(model=dict(
        pretrained=None, decode_head=dict(in_channels=WIDTHS, channels=64),
        auxiliary_head=dict(in_channels=WIDTHS[2], channels=32))))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(96, 128), pad_shape=(96, 128), ori_shape=(96, 128)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 96, 128)))
        samples.append(s)
    data = dict(inputs=[torch.randint(0, 255, (3, 96, 128), dtype=torch.uint8) for _ in range(2)], data_samples=samples)
    batch = model.data_preprocessor(data, True)
    loss, _ = model.parse_losses(model.loss(batch['inputs'], batch['data_samples']))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
