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
PRETRAIN_NAMES = tuple(os.path.basename(p) for p in PRETRAIN_CONFIGS)
COMA_NAMES = tuple(n for n in PRETRAIN_NAMES if n.startswith('coma_'))
IMAGENET_NAMES = tuple(os.path.basename(p) for p in CONFIGS if '/imagenet_configs/' in p)
#: the ImageNet configs that use the dataset bases' data preprocessor
IMAGENET_LOOP_NAMES = IMAGENET_NAMES
DOWNSTREAM_NAMES = tuple(os.path.basename(p) for p in CONFIGS if '/imagenet_configs/' not in p)
#: the full-scale recipes (the demo configs train on a CPU)
FULL_RECIPES = [p for p in CONFIGS if not p.endswith('_demo.py')]


@pytest.mark.parametrize('path', [p for p in FULL_RECIPES if '/imagenet_configs/' in p], ids=os.path.basename)
def test_full_imagenet_recipes_train_in_bf16_without_a_loss_scaler_on_cuda(path, monkeypatch):
    """On a GPU with bfloat16 (Ampere and newer) the ImageNet recipes autocast to bf16 with no GradScaler
    (whose step reads found_inf from the device every iteration); float16 with a scaler on older GPUs."""
    import torch
    from mmengine.optim import AmpOptimWrapper, build_optim_wrapper

    from coma.engine import AutocastOptimWrapper
    cfg = Config.fromfile(path)
    if cfg.optim_wrapper.get('type') != 'AutoAmpOptimWrapper':
        pytest.skip(f'{os.path.basename(path)} trains in float32 by design ({cfg.optim_wrapper.get("type")})')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    model = torch.nn.Linear(2, 2)
    model.get_layer_id, model.num_layers = (lambda name: 0), 1
    wrapper_cfg = {k: v for k, v in cfg.optim_wrapper.items() if k not in ('constructor', 'paramwise_cfg')}
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    assert type(wrapper) is AutocastOptimWrapper and wrapper.cast_dtype == torch.bfloat16
    assert not hasattr(wrapper, 'loss_scaler')
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: False)
    assert type(build_optim_wrapper(model, wrapper_cfg)) is AmpOptimWrapper


def test_adamw_is_fused_when_every_parameter_is_on_a_gpu(monkeypatch):
    import torch
    from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper

    from coma.engine import LayerDecayOptimWrapperConstructor
    from coma.models import DyViT
    model = DyViT('nano')
    cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
    assert not build_optim_wrapper(model, dict(cfg, constructor='LayerDecayOptimWrapperConstructor',
                                               paramwise_cfg=dict(backbone_prefix=''))
                                   ).optimizer.defaults.get('fused')  # on the CPU: as configured
    seen = {}
    monkeypatch.setattr(DefaultOptimWrapperConstructor, '__call__', lambda self, m: seen.update(self.optimizer_cfg))
    monkeypatch.setattr(torch.Tensor, 'is_cuda', property(lambda self: True))
    constructor = LayerDecayOptimWrapperConstructor(cfg)
    constructor(model)
    assert seen['fused'] is True and 'fused' not in constructor.optimizer_cfg
    seen.clear()
    LayerDecayOptimWrapperConstructor(dict(cfg, optimizer=dict(type='AdamW', lr=1e-3, foreach=True)))(model)
    assert 'fused' not in seen  # an explicit choice is kept


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


DEMO_PRETRAIN = [p for p in PRETRAIN_CONFIGS if p.endswith('_demo.py')]


@pytest.mark.parametrize('path', DEMO_PRETRAIN, ids=[os.path.basename(p) for p in DEMO_PRETRAIN])
def test_demo_pretraining_schedule_spans_the_run_on_the_pool(path):
    """The demo pre-training schedules count iterations of the pool (POOL_SIZE scenes, batch 32, the
    last partial batch dropped): the cosine must end exactly at the last step, or the lr either stays
    at its end value for the last epochs or is cut off half-way; the warm-up is the first phase."""
    from coma.datasets.demo import POOL_SIZE
    cfg = Config.fromfile(path)
    assert cfg.train_dataloader.dataset.data_prefix.img_path == 'pool'
    steps = cfg.train_cfg.max_epochs * (POOL_SIZE // cfg.train_dataloader.batch_size)
    warm, cosine = cfg.param_scheduler
    assert warm.type == 'LinearLR' and warm.begin == 0 and not warm.by_epoch
    assert cosine.type == 'CosineAnnealingLR' and (cosine.begin, cosine.end) == (warm.end, steps)
    assert cosine.T_max == steps - warm.end


@pytest.mark.parametrize('algo', ['coma', 'mae'])
def test_long_demo_pretraining_differs_from_the_demo_only_in_its_schedule(algo):
    """``--recipe demo-long`` compares with the demo only if model, data and optimizer are the same."""
    short, long = (Config.fromfile(os.path.join(ROOT, 'imagenet_configs', f'{algo}_dyvit-n_1xb32-coslr-{e}_demo.py'))
                   .to_dict() for e in ('4e', '32e'))
    assert long['train_cfg']['max_epochs'] == 8 * short['train_cfg']['max_epochs']
    for key in set(short) | set(long):
        if key not in ('param_scheduler', 'train_cfg', 'default_hooks'):
            assert short.get(key) == long.get(key), key


def _snapshot():
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location('dump_resolved_configs',
                                                  os.path.join(ROOT, 'tests', 'data', 'dump_resolved_configs.py'))
    dump = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dump)
    with open(dump.SNAPSHOT) as f:
        return dump, json.load(f)


DET_DEMO, SEG_DEMO = 'mask-rcnn_dyvit-n_fpn_demo.py', 'upernet_dyvit-n_demo.py'


class Each(dict):
    """An INTENDED value that differs per config: config name -> value."""


# Keys that changed on purpose, with the reason: dotted key -> (the configs it concerns, what it must
# be now; None: gone).
INTENDED = {
    # a Swin-T download URL that mmdet's Swin 3x base declares for its own backbone's init_cfg; ours
    # replaced that backbone, nothing read it, and our code never downloads weights
    'pretrained': (('mask-rcnn_dyvit-t_fpn_ms-3x_coco.py', 'mask-rcnn_dyvit-s_fpn_ms-3x_coco.py',
                    'mask-rcnn_dyvit-b_fpn_ms-3x_coco.py'), None),
    # pre-training: the weight-decay exclusions come from the models' no_weight_decay() (one source)
    # instead of custom_keys in the config; tests/engine/test_layer_decay.py proves every parameter
    # gets the lr and weight decay it got before
    'optim_wrapper.paramwise_cfg': (PRETRAIN_NAMES, None),
    'optim_wrapper.constructor': (PRETRAIN_NAMES, 'LayerDecayOptimWrapperConstructor'),
    # the demo detector samples RoIAlign bins 2x2 (10% less time per step), to fit make demo
    # in 25 minutes
    'model.roi_head.bbox_roi_extractor.roi_layer.sampling_ratio': ((DET_DEMO,), 2),
    'model.roi_head.mask_roi_extractor.roi_layer.sampling_ratio': ((DET_DEMO,), 2),
    # and trains 8 epochs instead of 10, the segmenter 320 iterations instead of 400 (the same shape
    # of schedule, scaled)
    'max_epochs': ((DET_DEMO,), 8),
    'train_cfg.max_epochs': ((DET_DEMO,), 8),
    'param_scheduler[0].end': ((DET_DEMO, SEG_DEMO), 40),
    'param_scheduler[1].end': ((DET_DEMO, SEG_DEMO), Each({DET_DEMO: 8, SEG_DEMO: 320})),
    'train_cfg.val_interval': ((DET_DEMO, SEG_DEMO), Each({DET_DEMO: 8, SEG_DEMO: 320})),
    'param_scheduler[1].milestones': ((DET_DEMO,), [6, 7]),
    'iters': ((SEG_DEMO,), 320),
    'train_cfg.max_iters': ((SEG_DEMO,), 320),
    'param_scheduler[1].begin': ((SEG_DEMO,), 40),
    'default_hooks.checkpoint.interval': ((SEG_DEMO,), 80),
    # CoMA's pre-training configs (and the MAE-on-DyViT ones, which inherit them) stop on a non-finite
    # loss and keep the random states in their checkpoints
    'custom_hooks': (tuple(n for n in PRETRAIN_NAMES if n.startswith(('coma_', 'mae_dyvit'))),
                     [dict(type='FiniteLossHook'), dict(type='RNGStateHook')]),
    # CoMA's latent targets are standardised over the batch; with raw targets loss_lat
    # collapsed the encoder (docs/results.md, "latent targets")
    # and, with the pixel head's norm_pix and lambda_lat, set in the heads' configs (the algorithms'
    # constructors take the heads, not their options)
    'model.latent_target_norm': (COMA_NAMES, None),
    'model.lambda_lat': (COMA_NAMES, None),
    'model.latent_loss': (COMA_NAMES, None),
    'model.latent_head': (COMA_NAMES, dict(type='LatentPredictionHead', loss_weight=1.0,
                                           loss=dict(type='LatentPredictionLoss', kind='cosine', target_norm='batch'))),
    'model.norm_pix': (PRETRAIN_NAMES, None),
    'model.head': (PRETRAIN_NAMES, dict(type='PixelReconstructionHead', norm_pix=True)),
    # the ImageNet loops read the losses from the device at the logger's interval, not every iteration,
    # and copy each batch to the GPU without waiting for it
    'default_hooks.runtime_info': (IMAGENET_NAMES, dict(type='DeferredRuntimeInfoHook')),
    'data_preprocessor.non_blocking': (IMAGENET_LOOP_NAMES, True),
    'model.data_preprocessor.non_blocking': (IMAGENET_LOOP_NAMES, True),
    # coma's AmpOptimWrapper (mmengine's float16 with loss scaling on CUDA: mmcv's CUDA ops take no
    # bfloat16; float32 on CPU), in the coma scope, where mmdet's and mmseg's --amp reach it too
    'optim_wrapper.dtype': (tuple(n for n in DOWNSTREAM_NAMES if 'demo' not in n), None),
    'optim_wrapper.type': (tuple(n for n in DOWNSTREAM_NAMES if 'demo' not in n), 'AmpOptimWrapper'),
    'optim_wrapper._scope_': (DOWNSTREAM_NAMES, 'coma'),
    # the ImageNet loops stack each batch in the loader's workers (mmengine's default_collate): one copy to the device and one
    # normalisation a batch (tests/datasets/test_image_folder.py: the same values)
    'train_dataloader.collate_fn': (IMAGENET_NAMES, dict(type='default_collate')),
    'val_dataloader.collate_fn': (tuple(n for n in IMAGENET_NAMES if n.startswith(('finetune', 'linprobe'))),
                                  dict(type='default_collate')),
    'test_dataloader.collate_fn': (tuple(n for n in IMAGENET_NAMES if n.startswith(('finetune', 'linprobe'))),
                                   dict(type='default_collate')),
    'optim_wrapper.cpu_dtype': (tuple(n for n in DOWNSTREAM_NAMES if 'demo' not in n), None),
    # DDP broadcasting the buffers every step would change the step counter's version and make the
    # model read it back from the GPU every step; MAE's buffers are the same on every rank
    'model_wrapper_cfg': (('mae_dyvit-b_8xb256-amp-coslr-800e_in1k.py', 'mae_vit-b-p16_8xb512-amp-coslr-800e_in1k.py'),
                          dict(type='MMDistributedDataParallel', broadcast_buffers=False)),
    # checkpoints written to a temporary file and renamed: a kill never leaves a half-written one
    'default_hooks.checkpoint.type': (IMAGENET_NAMES + DOWNSTREAM_NAMES, 'AtomicCheckpointHook'),
    # epoch-based loops start new train workers each epoch, seeded from the main process's restored
    # state: a resume after a kill is exact (persistent workers' streams cannot be rebuilt)
    'train_dataloader.persistent_workers': (IMAGENET_NAMES + tuple(n for n in DOWNSTREAM_NAMES if 'mask-rcnn' in n),
                                            False),
}


def _pop(cfg: dict, dotted: str, default='<missing>'):
    """Removes and returns ``cfg``'s value at ``dotted`` (``a.b``, ``a[1].b``)."""
    *parents, last = dotted.split('.')
    for key in parents:
        name, _, index = key.partition('[')
        cfg = cfg.get(name, {})
        if index:
            cfg = cfg[int(index.rstrip(']'))]
    return cfg.pop(last, default)


def _without_default_scope(value, scope):
    """``value`` without the ``_scope_`` marks that name the config's default scope: a dict inherited
    from an ``mmdet::`` base carries ``_scope_='mmdet'``, the same dict written locally does not, and
    under ``default_scope='mmdet'`` both build from the same registry."""
    if isinstance(value, dict):
        return {k: _without_default_scope(v, scope) for k, v in value.items()
                if not (k == '_scope_' and v == scope)}
    if isinstance(value, list):
        return [_without_default_scope(v, scope) for v in value]
    return value


def _differences(got, expected, where=''):
    if isinstance(got, dict) and isinstance(expected, dict):
        return [d for k in sorted(set(got) | set(expected), key=str)
                for d in _differences(got.get(k, '<missing>'), expected.get(k, '<missing>'), f'{where}.{k}')]
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        return [d for i, (g, e) in enumerate(zip(got, expected)) for d in _differences(g, e, f'{where}[{i}]')]
    return [] if got == expected else [f'{where}: {str(expected)[:120]} -> {str(got)[:120]}']


def test_configs_resolve_as_before():
    """The configs inherit through _base_; every one must resolve to the dict it resolved to before
    (tests/data/resolved_configs.json, written by tests/data/dump_resolved_configs.py at the commit
    before the change), but for the keys in INTENDED and the ``_scope_`` marks explained in
    _without_default_scope. No config is added or lost silently either."""
    dump, snapshot = _snapshot()
    assert dump.config_paths() == sorted(snapshot)
    wrong = []
    for path, expected in snapshot.items():
        got = dump.resolved(path)
        for key, (names, now) in INTENDED.items():
            if os.path.basename(path) in names:
                _pop(expected, key)
                want = now[os.path.basename(path)] if isinstance(now, Each) else now
                assert _pop(got, key, None) == want, f'{path}: {key} should now be {want}'
        scope = expected.get('default_scope')
        assert got.get('default_scope') == scope, path
        wrong += [path + d for d in _differences(_without_default_scope(got, scope),
                                                  _without_default_scope(expected, scope))]
    assert not wrong, '\n'.join(wrong[:20])
