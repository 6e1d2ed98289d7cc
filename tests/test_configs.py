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
