"""coma.analysis: the frozen-feature probe pieces and the demo report readers."""
import json
import os

import torch

import coma  # noqa: F401
from coma.analysis.features import pooled_features, probe_dataset, probe_model, spectrum
from coma.analysis.report import latest_metrics, print_results, summarise

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LINPROBE = os.path.join(ROOT, 'imagenet_configs', 'linprobe_dyvit-n_1xb32-coslr-20e_demo.py')


def test_spectrum_of_known_features():
    one_direction = torch.randn(50, 1) * torch.ones(1, 8)
    pc1, rank = spectrum(one_direction)
    assert pc1 > 0.999 and rank < 1.01
    pc1, rank = spectrum(torch.randn(2000, 4))
    assert pc1 < 0.3 and rank > 3.8


def test_pooled_features_of_the_probe_model(tmp_path):
    from coma.datasets.demo import make_imagenet
    make_imagenet(str(tmp_path), per_class=(1, 1), size=64)
    model, cfg = probe_model(LINPROBE, 'random', seed=0)
    ds = probe_dataset(cfg, str(tmp_path), 'val')
    feats, labels = pooled_features(model, ds, indices=range(4))
    flipped, _ = pooled_features(model, ds, indices=range(4), flip=True)
    assert feats.shape == (4, 256) and labels.tolist() == [int(ds[i]['data_samples'].gt_label) for i in range(4)]
    assert not torch.allclose(feats, flipped)


def test_report_reads_the_metrics_of_every_seed(tmp_path, capsys):
    for seed, value in ((0, 0.1), (1, 0.3)):
        test_dir = tmp_path / f'seed{seed}'
        test_dir.mkdir()
        (test_dir / 'det-coma_metrics.json').write_text(json.dumps({'coco/bbox_mAP': value}))
    rows = summarise(str(tmp_path), [0, 1, 2])
    assert len(rows) == 1 and rows[0]['seeds'] == [0, 1] and abs(rows[0]['mean'] - 0.2) < 1e-9
    print_results(rows, 'DyViT-N, demo data')
    assert '| Mask R-CNN | CoMA pre-trained | bbox_mAP | 0.200 ± 0.141 | 0, 1 (0.100, 0.300) |' in capsys.readouterr().out
    one = summarise(str(tmp_path), [1])  # a single seed has no sample std: none is printed or written
    assert one[0]['std'] is None
    print_results(one, 'DyViT-N, demo data')
    assert '| bbox_mAP | 0.300 ± n/a (one seed) | 1 (0.300) |' in capsys.readouterr().out
    run = tmp_path / 'work' / '20261130_000000'
    run.mkdir(parents=True)
    (run / '20261130_000000.json').write_text(json.dumps({'mIoU': 61.0}))
    (run / 'scalars.json').write_text('{}')
    assert latest_metrics(str(tmp_path / 'work')) == {'mIoU': 61.0}


def test_mask_frequencies_are_the_models_own_draws(tmp_path):
    """Figure 2's maps come from the models' own mask draws: both CoMA branches together hide every unit
    once per step; M_t's own iid mask is MAE's (same mask seed and keys); under 'alternate' M_t alone
    hides every unit within two epochs."""
    from coma.analysis.pictures import mask_frequencies, plot_mask_frequencies
    counts = mask_frequencies(40, 0.6, (7, 7))
    assert torch.equal(counts['coma_both'], torch.full((7, 7), 40.0))
    for name in ('mae', 'coma_iid', 'coma_alternate'):
        assert float(counts[name].sum()) == 40 * 29, name  # 29 of 49 units hidden at every step
    assert torch.equal(counts['mae'], counts['coma_iid'])
    assert counts['mae'].min() < counts['mae'].max()  # drawn afresh, not one fixed mask
    two = mask_frequencies(2, 0.6, (7, 7))
    assert two['coma_alternate'].min() >= 1 and two['coma_iid'].min() == 0
    plot_mask_frequencies(5, 0.6, (4, 4), str(tmp_path / 'f.png'))
    assert (tmp_path / 'f.png').stat().st_size > 1000
