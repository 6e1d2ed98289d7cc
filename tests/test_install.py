"""Installs: pyproject.toml declares the runtime stack, and ``pip install -e .`` resolves it from the
set-up's packages; the set-up's stamp records which mmcv ops are installed."""
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _requirements():
    lines = open(osp.join(ROOT, 'requirements.txt')).read().split('# tests\n')[0].splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def test_pyproject_declares_the_runtime_pins_of_the_set_up():
    import tomllib
    with open(osp.join(ROOT, 'pyproject.toml'), 'rb') as f:
        project = tomllib.load(f)['project']
    assert project['dependencies'] == _requirements()
    assert 'pytest' in project['optional-dependencies']['tests']


def test_pip_install_editable_resolves_every_dependency_from_the_installed_stack(tmp_path):
    """No index: every declared dependency must already be satisfied by what the set-up installed."""
    proc = subprocess.run([sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index', '--no-build-isolation',
                           '--report', str(tmp_path / 'report.json'), '-e', ROOT],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, PIP_CONFIG_FILE=os.devnull))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json
    names = [item['metadata']['name'] for item in json.load(open(tmp_path / 'report.json'))['install']]
    assert names == ['coma'], names  # nothing else to fetch
    requires = ' '.join(json.load(open(tmp_path / 'report.json'))['install'][0]['metadata'].get('requires_dist', []))
    assert 'mmdet==3.3.0' in requires and 'mmcv==2.1.0' in requires


def test_the_stamp_records_the_installed_mmcv_ops():
    from mmcv.ops import get_compiling_cuda_version
    stamp = osp.join(osp.dirname(osp.dirname(sys.executable)), '.coma-setup-done')
    text = open(stamp).read()
    ops = 'cpu' if get_compiling_cuda_version() == 'not available' else 'cuda'
    assert re.search(rf'^mmcv_ops={ops}$', text, re.M), text


def test_the_set_up_installs_cuda_ops_over_a_cpu_environment_when_asked(tmp_path):
    """A stamp that says CPU ops and ``MMCV_WITH_CUDA=1`` (a login node's environment reused for GPUs):
    the set-up does not stop at the stamp. ``--plan`` says so without doing it."""
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    os.symlink(sys.executable, venv / 'bin' / 'python')
    (venv / '.coma-setup-done').write_text('mmcv_ops=cpu\n')
    script = osp.join(ROOT, 'tools', 'setup_env.sh')
    env = dict(os.environ, VENV=str(venv), PATH='/usr/bin:/bin')  # no nvidia-smi: no visible GPU
    env.pop('MMCV_WITH_CUDA', None)
    out = subprocess.run(['bash', script, '--plan'], capture_output=True, text=True, env=env, check=True).stdout
    assert 'up to date (mmcv_ops=cpu)' in out
    out = subprocess.run(['bash', script, '--plan'], capture_output=True, text=True, check=True,
                         env=dict(env, MMCV_WITH_CUDA='1')).stdout
    assert 'CUDA ops wanted' in out and 'plan: set up' in out
    assert shutil.which('bash')
