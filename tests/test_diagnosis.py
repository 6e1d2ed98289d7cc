"""The checkpoint diagnosis: its measures on known cases, and the tool end to end."""
import os
import subprocess
import sys

import pytest
import torch

from coma.diagnosis import diagnose, effective_rank, load_image_batch, load_trained_dyvit, mean_pairwise_cosine
from coma.models import DyViT

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))


def test_effective_rank_and_cosine_on_known_features():
    torch.manual_seed(0)
    assert effective_rank(torch.randn(200, 1) @ torch.randn(1, 16) + 1e-4 * torch.randn(200, 16)) < 1.5
    assert effective_rank(torch.randn(200, 16)) > 12
    same = torch.ones(5, 8)
    assert mean_pairwise_cosine(same) == pytest.approx(1.0)
    assert abs(mean_pairwise_cosine(torch.randn(400, 64))) < 0.05


def test_diagnosis_sees_what_training_changed():
    torch.manual_seed(0)
    fresh = DyViT('nano')
    model = DyViT('nano')
    model.load_state_dict(fresh.state_dict())
    with torch.no_grad():
        model.stages[2].blocks[0].mlp.fc1.weight.mul_(3.0)  # one block's weights blow up
        model.stages[3].blocks[1].attn.coarse_bias_table[:5] += 1.0  # five rows of one table move
        model.stages[1].blocks[0].attn.gate.bias.copy_(torch.tensor([10.0, -10.0]))  # gate saturates
    blocks, summary = diagnose(model, fresh, load_image_batch(None, 6, 64))
    assert len(blocks) == sum((2, 2, 6, 2))  # DyViT-N depths
    by = {(b['stage'], b['block']): b for b in blocks}
    assert by[2, 0]['weight_rms_ratio'] > 1.5 and by[0, 0]['weight_rms_ratio'] == pytest.approx(1.0)
    assert by[3, 1]['coarse_rows_moved'] == pytest.approx(5 / 169) and by[3, 0]['coarse_rows_moved'] == 0
    assert by[1, 0]['gate_fine'] > 0.99 and by[0, 0]['gate_fine'] == pytest.approx(0.5)
    assert all(0 < b['entropy_coarse'] <= 1 + 1e-6 and 0 < b['entropy_fine'] <= 1 + 1e-6 for b in blocks if 'entropy_fine' in b)
    assert summary['fresh_effective_rank'] > 1 and -1 <= summary['latent_cosine'] <= 1


def test_analyze_checkpoint_tool(tmp_path):
    torch.manual_seed(0)
    m = DyViT('nano')
    ckpt = tmp_path / 'pretrain.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in m.state_dict().items()},
                    meta=dict(backbone=dict(type='DyViT', arch='nano'))), ckpt)
    out = tmp_path / 'diag'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'analyze_checkpoint.py'), str(ckpt),
                           '--images', '4', '--size', '64', '--out', str(out)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'effective_rank' in proc.stdout and '| stage | block |' in proc.stdout
    assert (out / 'diagnosis.json').exists() and (out / 'diagnosis.png').stat().st_size > 1000
    # identical to the fresh init built with the same seed: nothing moved
    assert ' 1.000 |' in proc.stdout


def test_loader_names_bad_input(tmp_path):
    ckpt = tmp_path / 'bare.pth'
    torch.save(dict(state_dict={'backbone.patch_embed.weight': torch.zeros(1)}), ckpt)
    with pytest.raises(KeyError, match='carries no config'):
        load_trained_dyvit(str(ckpt))
    with pytest.raises(ValueError, match='does not fit'):
        load_trained_dyvit(str(ckpt), arch='nano')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no .jpg'):
        load_image_batch(str(tmp_path / 'empty'), 2, 64)


def test_coco_label_maps_follow_the_annotations(demo_data):
    import json
    from coma.diagnosis import load_coco_label_maps
    root = os.path.join(demo_data, 'coco')
    images, labels, names = load_coco_label_maps(root, 'val', scale=(320, 256))
    coco = json.load(open(os.path.join(root, 'annotations', 'instances_val2017.json')))
    assert names == ['background', 'circle', 'rectangle', 'triangle']
    assert images.shape == (len(coco['images']), 3, 256, 320) and labels.shape == (len(coco['images']), 256, 320)
    info = coco['images'][0]
    r = min(320 / info['width'], 256 / info['height'])
    assert (labels[0, int(info['height'] * r) + 2:, :] == 255).all() or int(info['height'] * r) >= 254  # padding
    for ann in (a for a in coco['annotations'] if a['image_id'] == info['id'] and not a['iscrowd']):
        x, y, w, h = ann['bbox']
        cx, cy = int((x + w / 2) * r), int((y + h / 2) * r)
        if labels[0, cy, cx] not in (0, 255):  # the centre of a triangle can lie under a later shape
            assert 1 <= int(labels[0, cy, cx]) <= 3
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3, 255} and (labels == 0).any() and ((labels > 0) & (labels < 4)).any()


def test_dense_probe_reads_what_the_features_carry(demo_data):
    from coma.diagnosis import dense_probe, downstream_dyvit, load_coco_label_maps
    root = os.path.join(demo_data, 'coco')
    train = load_coco_label_maps(root, 'train', limit=12)
    val = load_coco_label_maps(root, 'val', limit=6)
    model = downstream_dyvit(None)
    out = dense_probe(model, train[:2], val[:2], len(train[2]), steps=60)
    assert set(out) == {'miou', 'fg_iou', 'acc'} and all(0 <= v <= 100 for v in out.values())
    # a backbone whose every output is constant carries nothing: the probe sees it
    with torch.no_grad():
        for i in range(4):
            getattr(model, f'norm{i}').weight.zero_()
    blind = dense_probe(model, train[:2], val[:2], len(train[2]), steps=60)
    assert blind['miou'] < out['miou'] and blind['fg_iou'] < out['fg_iou']


def test_spatial_variation_tells_image_level_from_location_features():
    from coma.diagnosis import spatial_variation

    class Maps(torch.nn.Module):
        def forward(self, x):
            per_image = x.mean((1, 2, 3), keepdim=True).expand(-1, 8, 5, 5)  # one vector per image
            return per_image, x[:, :1].repeat(1, 8, 1, 1)
    torch.manual_seed(0)
    flat, local = spatial_variation(Maps(), torch.randn(4, 3, 5, 5))
    assert flat < 1e-6 and local > 0.9
    assert all(0.3 < v < 1.0 for v in spatial_variation(DyViT('nano', out_indices=(0, 1, 2, 3)), load_image_batch(None, 4, 64)))


def test_tool_adds_the_dense_probe_and_spatial_variation(tmp_path, demo_data):
    torch.manual_seed(0)
    ckpt = tmp_path / 'backbone.pth'
    torch.save(dict(state_dict=DyViT('nano').state_dict(), meta=dict(backbone=dict(type='DyViT', arch='nano'))), ckpt)
    out = subprocess.run([sys.executable, 'tools/analyze_checkpoint.py', str(ckpt), '--size', '64', '--images', '4',
                          '--coco', os.path.join(demo_data, 'coco'), '--out', str(tmp_path / 'd')],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    import json
    summary = json.load(open(tmp_path / 'd' / 'diagnosis.json'))['summary']
    assert len(summary['spatial_variation']) == 4 and set(summary['dense_probe']) == {'miou', 'fg_iou', 'acc'}
    # the same weights as the random init of the same seed: the same probe
    assert summary['dense_probe'] == summary['fresh_dense_probe']
