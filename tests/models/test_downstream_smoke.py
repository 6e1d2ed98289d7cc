"""DyViT inside mmdet's Mask R-CNN and mmseg's UperNet: one loss step and a backward pass on CPU."""
import os

import pytest
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


def test_clamp_untrained_offsets_copies_the_nearest_trained_row():
    from coma.models.checkpoint import clamp_untrained_offsets
    w = 7
    table = torch.randn((2 * w - 1) ** 2, 3)
    out = clamp_untrained_offsets(table, (3, 3)).view(2 * w - 1, 2 * w - 1, 3)
    t = table.view(2 * w - 1, 2 * w - 1, 3)
    c = w - 1  # row of offset 0
    torch.testing.assert_close(out[c - 3:c + 4, c - 3:c + 4], t[c - 3:c + 4, c - 3:c + 4])  # trained rows kept
    torch.testing.assert_close(out[c + 6, c + 6], t[c + 3, c + 3])  # (+6, +6) -> (+3, +3)
    torch.testing.assert_close(out[c - 5, c + 1], t[c - 3, c + 1])  # (-5, +1) -> (-3, +1)
    torch.testing.assert_close(out[c + 4, c - 6], t[c + 3, c - 3])
    torch.testing.assert_close(clamp_untrained_offsets(table, (6, 6)), table)  # all trained: unchanged
    with pytest.raises(ValueError, match='rows'):
        clamp_untrained_offsets(torch.randn(12, 3), (1, 1))


def test_conversion_clamps_the_offsets_a_small_pretraining_grid_never_trained(tmp_path):
    """128-px pre-training (4x4 units) trains coarse offsets up to 3 of the window's 6: with
    clamp_offsets no downstream offset reads an untrained (random) row."""
    from mmengine.registry import MODELS as ROOT_MODELS
    from coma.models.checkpoint import convert_pretrain_checkpoint as convert, pretrain_grid
    cfg = Config.fromfile(os.path.join(ROOT, 'imagenet_configs', 'coma_dyvit-n_1xb32-coslr-4e_demo.py'))
    assert pretrain_grid(cfg) == (4, 4)
    coma_model = ROOT_MODELS.build(dict(type='CoMA', backbone=dict(type='DyViT', arch='nano', out_indices=(3,)),
                                        decoder=dict(type='CoMADecoder', embed_dim=64, depth=1, num_heads=4)))
    src = tmp_path / 'pretrain.pth'
    torch.save(dict(state_dict=coma_model.state_dict(), meta=dict(epoch=1, cfg=cfg.pretty_text)), src)
    key = 'stages.2.blocks.0.attn.coarse_bias_table'
    before = coma_model.backbone.state_dict()[key].view(13, 13, -1)
    summary = convert(str(src), str(tmp_path / 'b.pth'), clamp_offsets=True)
    after = torch.load(tmp_path / 'b.pth')['state_dict'][key].view(13, 13, -1)
    assert summary['clamped'] == (3, 3)
    torch.testing.assert_close(after[3:10, 3:10], before[3:10, 3:10])
    torch.testing.assert_close(after[12, 0], before[9, 3])
    assert not torch.equal(after, before)
    summary = convert(str(src), str(tmp_path / 'k.pth'))  # the default keeps the rows at their init
    assert summary['clamped'] is None
    torch.testing.assert_close(torch.load(tmp_path / 'k.pth')['state_dict'][key].view(13, 13, -1), before)
    summary = convert(str(src), str(tmp_path / 'f.pth'), pretrain_grid_size=(7, 7), clamp_offsets=True)  # 224 px
    assert summary['clamped'] is None
    torch.save(dict(state_dict=coma_model.state_dict(), meta=dict(epoch=1)), tmp_path / 'nocfg.pth')
    with pytest.raises(ValueError, match='nocfg.pth.*--pretrain-size'):  # clamping without a known grid fails clearly
        convert(str(tmp_path / 'nocfg.pth'), str(tmp_path / 'n.pth'), dict(type='DyViT', arch='nano'), clamp_offsets=True)
