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
