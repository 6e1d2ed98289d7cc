"""The README's quick start runs as written; the README and the results report keep their sizes; code,
configs, tools, tests and docs describe what is (no issue numbers or work periods)."""
import os
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# What a tracker reference or a counted work period looks like, spelled in pieces so that this file
# does not match itself.
TRACKER, PERIOD = 'iss' + 'ue', 'sess' + 'ion'
ORDINALS = [stem + 'th' for stem in ('seven', 'eigh', 'nin', 'ten', 'eleven', 'twelf', 'thirteen', 'fourteen')]
HISTORY = re.compile(TRACKER + r' [0-9]|\b(' + '|'.join(ORDINALS) + r') ' + PERIOD + '|' + '|'.join(ORDINALS[-3:]),
                     re.IGNORECASE)
TEXT = ('.py', '.md', '.sh', '.txt', '.json', '.cfg', '.toml', '.yml', '.yaml', '.log')


def _read(path):
    with open(osp.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def python_blocks(markdown: str):
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r'^```python\n(.*?)^```', markdown, flags=re.MULTILINE | re.DOTALL)


def test_readme_quick_start_runs():
    blocks = python_blocks(_read('README.md'))
    assert blocks, 'README.md has no ```python block'
    for block in blocks:
        namespace = {}
        exec(compile(block, 'README.md', 'exec'), namespace)  # noqa: S102  (our own README)
    feats = namespace['feats']
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]  # DyViT-T's widths
    assert [f.shape[-2:] for f in feats][0] == (200, 334)  # stride 4 of 800x1333, padded


def test_python_blocks_are_found():
    text = 'a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n'
    assert python_blocks(text) == ['x = 1\n', 'y = 2\n']


@pytest.mark.parametrize('path,limit', [('README.md', 10_000), ('docs/results.md', 30_000)])
def test_size(path, limit):
    assert len(_read(path)) <= limit, f'{path}: {len(_read(path))} characters, limit {limit}'


def test_no_issue_numbers_or_work_periods():
    found = []
    for top in ('README.md', 'docs', 'coma', 'configs', 'imagenet_configs', 'mmdet_configs', 'mmseg_configs',
                'tools', 'tests'):
        walk = os.walk(osp.join(ROOT, top)) if osp.isdir(osp.join(ROOT, top)) else [(ROOT, [], [top])]
        for dirpath, _, files in walk:
            for name in files:
                path = osp.relpath(osp.join(dirpath, name), ROOT)
                if '__pycache__' in path:
                    continue
                if HISTORY.search(name.replace('_', ' ')) or re.search(TRACKER + r'_?[0-9]', name, re.IGNORECASE):
                    found.append(f'{path}: the file name')
                lines = _read(path).splitlines() if name.endswith(TEXT) else []
                hits = [f'{path}:{n}: {line.strip()[:100]}' for n, line in enumerate(lines, 1) if HISTORY.search(line)]
                found += hits[:1]
    assert not found, 'history in files that describe the present:\n' + '\n'.join(found)
