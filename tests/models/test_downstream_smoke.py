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


ROOT = __import__('os').path.dirname(__import__('os').path.dirname(__import__('os').path.dirname(__import__('os').path.abspath(__file__))))


def test_upernet_slide_inference_at_odd_size():
    import os
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(os.path.join(ROOT, 'mmseg_configs', 'dyvit', 'upernet_dyvit-n_demo.py'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    model.init_weights()
    img = torch.randint(0, 255, (3, 517, 683), dtype=torch.uint8)
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=(517, 683), ori_shape=(517, 683), pad_shape=(517, 683)))
    with torch.no_grad():
        out = model.test_step(dict(inputs=[img], data_samples=[sample]))
    assert cfg.model.test_cfg.mode == 'slide'
    assert out[0].pred_sem_seg.data.shape == (1, 517, 683)
    assert int(out[0].pred_sem_seg.data.max()) < 4


def _converted_checkpoint(tmp_path):
    """A CoMA pre-training checkpoint of DyViT-N, converted for downstream use."""
    from mmengine.registry import MODELS as ROOT_MODELS
    from coma.models.checkpoint import convert_pretrain_checkpoint as convert
    coma_model = ROOT_MODELS.build(dict(type='CoMA', backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
                                        decoder=dict(type='CoMADecoder', embed_dim=64, depth=1, num_heads=4)))
    src, dst = tmp_path / 'pretrain.pth', tmp_path / 'backbone.pth'
    torch.save(dict(state_dict=coma_model.state_dict(), meta=dict(epoch=1)), src)
    convert(str(src), str(dst), dict(type='DyViT', arch='nano'))
    return coma_model, dst


def test_converted_coma_checkpoint_initialises_mask_rcnn_and_upernet(tmp_path):
    import os
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    coma_model, ckpt = _converted_checkpoint(tmp_path)
    expected = coma_model.backbone.stages[2].blocks[3].attn.kv_coarse.weight
    for scope, registry, cfg in (('mmdet', DET, 'mmdet_configs/dyvit/mask-rcnn_dyvit-n_fpn_demo.py'),
                                 ('mmseg', SEG, 'mmseg_configs/dyvit/upernet_dyvit-n_demo.py')):
        init_default_scope(scope)
        c = Config.fromfile(os.path.join(ROOT, cfg))
        c.model.backbone.init_cfg.checkpoint = str(ckpt)
        model = registry.build(c.model)
        model.init_weights()  # strict: raises on unexpected keys or shape mismatches
        torch.testing.assert_close(model.backbone.stages[2].blocks[3].attn.kv_coarse.weight, expected)
