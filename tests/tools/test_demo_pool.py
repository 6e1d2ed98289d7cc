"""The unlabelled pre-training pool of the demo (tools/make_demo_data.py --pool)."""
import hashlib
import os
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def _pool(out, n=6):
    subprocess.run([sys.executable, 'tools/make_demo_data.py', '--pool', str(out), '--pool-size', str(n)],
                   cwd=ROOT, check=True, capture_output=True)
    return sorted(os.listdir(out))


def test_pool_is_a_deterministic_flat_folder_of_varied_scenes(tmp_path):
    names = _pool(tmp_path / 'a')
    assert names == [f'pool_{i:05d}.jpg' for i in range(6)]
    images = [np.asarray(Image.open(tmp_path / 'a' / n)) for n in names]
    assert all(im.shape == (256, 256, 3) for im in images)
    assert len({hashlib.sha1(im.tobytes()).hexdigest() for im in images}) == 6
    digest = lambda d: [hashlib.sha1(open(d / n, 'rb').read()).hexdigest() for n in names]  # noqa: E731
    _pool(tmp_path / 'b')
    assert digest(tmp_path / 'a') == digest(tmp_path / 'b')  # the same seed, the same pool


def test_the_pretraining_dataset_reads_the_pool_without_labels(tmp_path):
    import coma  # noqa: F401
    from mmengine.registry import DATASETS
    _pool(tmp_path / 'pool', n=4)
    ds = DATASETS.build(dict(type='ImageFolder', data_root=str(tmp_path), data_prefix=dict(img_path='pool'),
                             pipeline=[]))
    assert len(ds) == 4
