"""Every config in mmdet_configs/, mmseg_configs/ and imagenet_configs/ builds: each type= resolves."""
import glob
import os

import pytest
from mmengine.config import Config

import coma  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for folder in ('mmdet_configs', 'mmseg_configs', 'imagenet_configs')
                 for p in glob.glob(os.path.join(ROOT, folder, '**', '*.py'), recursive=True)
                 if '_base_' not in p)


def test_there_are_configs():
    assert any('imagenet_configs' in p for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=[os.path.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DATASETS, MODELS, TRANSFORMS, init_default_scope
    cfg = Config.fromfile(path)
    # as the Runner does: no default_scope means mmengine's root registries
    scope = cfg.get('default_scope') or 'mmengine'
    init_default_scope(scope)
    with MODELS.switch_scope_and_registry(scope) as models:
        model = models.build(cfg.model)  # pre-trained weights are given on the command line
    if cfg.get('optim_wrapper'):
        assert build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        dataset = loader['dataset']
        while 'dataset' in dataset:  # wrappers such as RepeatDataset
            dataset = dataset['dataset']
        with DATASETS.switch_scope_and_registry(scope) as datasets:
            assert datasets.get(dataset['type']) is not None, dataset['type']
        with TRANSFORMS.switch_scope_and_registry(scope) as transforms:
            for t in dataset.get('pipeline', []):
                assert transforms.get(t['type']) is not None, t['type']


PRETRAIN_CONFIGS = [p for p in CONFIGS if os.path.basename(p).startswith(('coma_', 'mae_'))]


@pytest.mark.parametrize('path', PRETRAIN_CONFIGS, ids=[os.path.basename(p) for p in PRETRAIN_CONFIGS])
def test_pretraining_lr_follows_the_scaling_rule(path):
    """SPEC section 5: lr = 1.5e-4 * total batch / 256, the total batch read from the file name
    (``8xb256`` = 8 processes of 256). The demo once used 80x that and it made every downstream
    model worse (docs/results.md)."""
    import re
    gpus, per_gpu = map(int, re.search(r'_(\d+)xb(\d+)', os.path.basename(path)).groups())
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.batch_size == per_gpu
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1.5e-4 * gpus * per_gpu / 256, rel=1e-9)
