"""Writes every config's resolved dict to ``tests/data/resolved_configs.json``.

The snapshot was taken before the configs were made to inherit; ``tests/test_configs.py``
proves every config still resolves to it. Re-run this only for an intended change of a recipe, and
say so in the commit::

    python tests/data/dump_resolved_configs.py
"""
import glob
import json
import os
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SNAPSHOT = osp.join(ROOT, 'tests', 'data', 'resolved_configs.json')
FOLDERS = ('mmdet_configs', 'mmseg_configs', 'imagenet_configs')


def config_paths(root: str = ROOT) -> list:
    """Every runnable config (``_base_`` files excluded), relative to ``root``."""
    return sorted(osp.relpath(p, root) for folder in FOLDERS
                  for p in glob.glob(osp.join(root, folder, '**', '*.py'), recursive=True) if '_base_' not in p)


def resolved(path: str, root: str = ROOT) -> dict:
    """The config at ``path`` fully resolved, as plain JSON types (tuples become lists)."""
    from mmengine.config import Config
    return json.loads(json.dumps(Config.fromfile(osp.join(root, path)).to_dict(), sort_keys=True, default=repr))


if __name__ == '__main__':
    with open(SNAPSHOT, 'w') as f:
        json.dump({p: resolved(p) for p in config_paths()}, f, indent=1, sort_keys=True)
    print(f'wrote {SNAPSHOT}')
