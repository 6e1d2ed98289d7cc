"""Checkpoints saved by the code of commit b77a554 (before the heads, the timm classifier and the
optimizer rules moved) load and compute the same: a CoMA pre-training
checkpoint (strict load, same losses, converts), a classifier of the old ``DyViT(num_classes=N)``
(now timm's ``TimmDyViT``: same logits) and a demo Mask R-CNN (strict load, same backbone
features). The fixtures are made at test time by the code of commit b77a554, taken from this
clone's history (tests/data/make_layout_b77a554_fixture.py)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

import coma  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
OLD_COMMIT = 'b77a554'


@pytest.fixture(scope='module')
def old(tmp_path_factory):
    here = tmp_path_factory.mktemp('b77a554')
    src = here / 'src'
    src.mkdir()
    archive = subprocess.run(['git', '-C', ROOT, 'archive', OLD_COMMIT, 'coma', 'imagenet_configs', 'mmdet_configs',
                              'configs'], capture_output=True)
    assert archive.returncode == 0, (f'commit {OLD_COMMIT} is not in this clone\'s history: '
                                     + archive.stderr.decode()[-300:])
    subprocess.run(['tar', '-x', '-C', str(src)], input=archive.stdout, check=True)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(src))
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tests', 'data', 'make_layout_b77a554_fixture.py'), str(src),
                           str(here)], capture_output=True, text=True, env=env, cwd=str(here))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return here, torch.load(here / 'outputs.pth')


def test_pretraining_checkpoint_loads_strictly_and_gives_the_same_losses(old, tmp_path):
    here, ref = old
    ckpt = torch.load(here / 'coma_pretrain.pth')
    cfg = Config.fromstring(ckpt['meta']['cfg'], '.py')
    from coma.models.algorithms.legacy import upgrade_algorithm_cfg
    model_cfg, notes = upgrade_algorithm_cfg(cfg.model.to_dict())  # the old run's config, in today's form
    assert notes
    model = MODELS.build(model_cfg)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    model.train()
    # the old run scored loss_lat against raw latent targets (today's are standardised over the batch)
    model.latent_head.loss_module.forward = lambda pred, target: (
        1 - torch.nn.functional.cosine_similarity(pred.float(), target.detach().float(), dim=-1)).mean()
    losses = model.loss(ref['pretrain_input'])
    assert set(losses) == set(ref['pretrain_losses'])
    for key, value in ref['pretrain_losses'].items():
        torch.testing.assert_close(losses[key].detach(), value, rtol=1e-5, atol=1e-6, msg=key)
    from coma.models.checkpoint import convert_pretrain_checkpoint
    summary = convert_pretrain_checkpoint(str(here / 'coma_pretrain.pth'), str(tmp_path / 'backbone.pth'))
    assert summary['tensors'] > 0


def test_classifier_of_the_old_flag_loads_into_timm_dyvit(old):
    import timm
    here, ref = old
    model = timm.create_model('dyvit_nano', num_classes=10).eval()
    model.load_state_dict(torch.load(here / 'timm_classifier.pth')['state_dict'], strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(ref['cls_input']), ref['logits'], rtol=1e-5, atol=1e-5)


def test_downstream_checkpoint_loads_strictly(old):
    here, ref = old
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(ROOT, 'mmdet_configs', 'dyvit', 'mask-rcnn_dyvit-n_fpn_demo.py'))
    from mmdet.registry import MODELS as DET_MODELS
    det = DET_MODELS.build(cfg.model).eval()
    det.load_state_dict(torch.load(here / 'mask_rcnn.pth')['state_dict'], strict=True)
    with torch.no_grad():
        for a, b in zip(det.backbone(ref['cls_input']), ref['det_features']):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
