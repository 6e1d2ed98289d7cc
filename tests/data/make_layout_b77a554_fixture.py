"""Checkpoints made by the code of commit b77a554 (before the heads, the timm classifier and
the optimizer rules moved): a CoMA pre-training checkpoint with its losses, a timm-style
DyViT classifier with its logits, and a demo Mask R-CNN with its backbone features.

    python tests/data/make_layout_b77a554_fixture.py OLD_CHECKOUT OUT_DIR
    # OLD_CHECKOUT: `git archive b77a554 coma imagenet_configs mmdet_configs configs`, extracted
"""
import os
import sys

old, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, old)  # that commit's coma package, not this checkout's
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import MODELS, init_default_scope  # noqa: E402

import coma  # noqa: E402
assert os.path.dirname(coma.__file__).startswith(os.path.abspath(old)), coma.__file__
from coma.models import DyViT  # noqa: E402


def perturbed(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


torch.manual_seed(0)
cfg = Config.fromfile(os.path.join(old, 'imagenet_configs', 'coma_dyvit-n_1xb32-coslr-20e_demo.py'))
model = perturbed(MODELS.build(cfg.model))
model.sync_frozen()
x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
model.train()
losses = {k: v.detach() for k, v in model.loss(x).items()}  # step 0: every loss, loss_eval included
model.mask_step.zero_()
torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=cfg.pretty_text, epoch=1, iter=1)),
           os.path.join(out, 'coma_pretrain.pth'))

cls = perturbed(DyViT('nano', out_indices=(3,), num_classes=10)).eval()
img = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    logits = cls(img)
torch.save(dict(state_dict=cls.state_dict()), os.path.join(out, 'timm_classifier.pth'))

init_default_scope('mmdet')
det_cfg = Config.fromfile(os.path.join(old, 'mmdet_configs', 'dyvit', 'mask-rcnn_dyvit-n_fpn_demo.py'))
det = perturbed(MODELS.build(det_cfg.model)).eval()
with torch.no_grad():
    det_feats = [f.clone() for f in det.backbone(img)]
torch.save(dict(state_dict=det.state_dict(), meta=dict(cfg=det_cfg.pretty_text)), os.path.join(out, 'mask_rcnn.pth'))
torch.save(dict(pretrain_input=x, pretrain_losses=losses, cls_input=img, logits=logits, det_features=det_feats),
           os.path.join(out, 'outputs.pth'))
print('ok')
