import os

import pytest
import torch
from mmengine.registry import init_default_scope

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed_and_scope():
    """Each test starts from seed 0 and mmengine's root registries (as a Runner with no default_scope)."""
    torch.manual_seed(0)
    init_default_scope('mmengine')


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """The generated COCO- and ADE20K-format demo datasets (tools/make_demo_data.py), made once."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path_factory.mktemp('demo')
    subprocess.run([sys.executable, 'tools/make_demo_data.py', '--coco', str(out / 'coco'), '--ade', str(out / 'ade')],
                   cwd=root, check=True, capture_output=True)
    return out
