"""ImageNet fine-tuning and linear probing on the real mmengine Runner, on a tiny image folder."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import coma  # noqa: F401
from coma.engine import safe_torch_load

from _helpers import ROOT, metrics, run

FT_CFG = osp.join(ROOT, 'imagenet_configs', 'finetune_dyvit-n_1xb32-coslr-10e_demo.py')
LP_CFG = osp.join(ROOT, 'imagenet_configs', 'linprobe_dyvit-n_1xb32-coslr-20e_demo.py')


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    from coma.datasets.demo import make_imagenet
    out = str(tmp_path_factory.mktemp('imagenet'))
    make_imagenet(out, per_class=(1, 1), size=64)  # 10 classes: 10 train, 10 val images
    return out


def opts(root, *extra):
    return [f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}', 'train_dataloader.batch_size=4',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1', *extra]


def test_finetune_two_iterations_then_eval(image_folder, tmp_path):
    log = run('train.py', FT_CFG, '--work-dir', str(tmp_path), '--cfg-options', *opts(image_folder))
    assert safe_torch_load(str(tmp_path / 'epoch_1.pth'))['meta']['iter'] == 2  # 10 images, batch 4, drop_last
    assert 'accuracy/top1' in log  # the validation loop ran after the epoch
    run('test.py', FT_CFG, str(tmp_path / 'epoch_1.pth'), '--work-dir', str(tmp_path / 'test'),
        '--cfg-options', *opts(image_folder))
    result = metrics(tmp_path / 'test')
    assert set(result) >= {'accuracy/top1', 'accuracy/top5'}
    assert result['accuracy/top1'] == pytest.approx(_top1_by_hand(tmp_path / 'epoch_1.pth', image_folder), abs=1e-4)


def _top1_by_hand(checkpoint, root):
    """Top-1 (%) of ``checkpoint`` on ``root/val``, apart from the test loop's metric: the model's logits,
    each image labelled by its class folder (ImageNet's rule: class ids follow the sorted folder names)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS
    from mmengine.runner import Runner
    cfg = Config.fromfile(FT_CFG)
    loader = dict(cfg.test_dataloader, num_workers=0, persistent_workers=False)
    loader['dataset'] = dict(loader['dataset'], data_root=root)
    classes = sorted(os.listdir(osp.join(root, 'train')))
    model = MODELS.build(cfg.model)
    model.load_state_dict(safe_torch_load(str(checkpoint))['state_dict'])
    model.eval()
    hits = []
    with torch.no_grad():
        for batch in Runner.build_dataloader(loader):
            data = model.data_preprocessor(batch, False)
            predicted = model(data['inputs'], mode='tensor').argmax(1)
            truth = [classes.index(osp.basename(osp.dirname(s.img_path))) for s in data['data_samples']]
            hits += (predicted == torch.tensor(truth)).tolist()
    assert len(hits) == 10
    return 100.0 * sum(hits) / len(hits)


def test_linear_probe_under_torchrun_keeps_the_converted_backbone(image_folder, tmp_path):
    """2 gloo processes; the backbone loaded from a converted checkpoint is unchanged after training."""
    from mmengine.config import Config
    from mmengine.registry import MODELS
    backbone = MODELS.build(dict(Config.fromfile(LP_CFG).model.backbone, init_cfg=None))
    torch.save(dict(state_dict=backbone.state_dict()), tmp_path / 'bb.pth')
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2', '--master-port',
                           '29587', osp.join(ROOT, 'tools', 'train.py'), LP_CFG, '--launcher', 'pytorch',
                           '--work-dir', str(tmp_path),
                           '--cfg-options', *opts(image_folder, f'model.backbone.init_cfg.checkpoint={tmp_path}/bb.pth',
                                                  'train_dataloader.batch_size=2')],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = safe_torch_load(str(tmp_path / 'epoch_1.pth'))['state_dict']
    for key, value in backbone.state_dict().items():
        assert torch.equal(state[f'backbone.{key}'], value), key
    assert not torch.equal(state['head.fc.bias'], torch.zeros_like(state['head.fc.bias']))
