"""The GPU scripts run only on a lent device machine, never in CI: here, at least, they must parse, and
the Python tools they call must accept the arguments they pass."""
import glob
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPTS = sorted(glob.glob(osp.join(ROOT, 'tools', '*.sh')))


@pytest.mark.parametrize('script', SCRIPTS, ids=osp.basename)
def test_shell_script_parses(script):
    proc = subprocess.run(['bash', '-n', script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _tool_calls(script):
    """(tool, [flags]) for each ``$PY tools/X.py ...`` or ``python3 tools/X.py ...`` call, continuation lines joined."""
    text = open(script).read().replace('\\\n', ' ')
    for match in re.finditer(r'(?:\$PY|python3) (tools/\w+\.py)([^|>\n]*)', text):
        yield match.group(1), re.findall(r'(?<!\S)--[\w-]+', match.group(2))


@pytest.mark.parametrize('script', [s for s in SCRIPTS if osp.basename(s) in ('gpu_speed.sh', 'gpu_check.sh')],
                         ids=osp.basename)
def test_gpu_script_flags_exist(script):
    flags = {}
    for tool, used in _tool_calls(script):
        flags.setdefault(tool, set()).update(used)
    assert flags, f'{script}: no tool calls found'
    for tool, used in flags.items():
        usage = subprocess.run([sys.executable, osp.join(ROOT, tool), '--help'], capture_output=True, text=True,
                               cwd=ROOT)
        assert usage.returncode == 0, (tool, usage.stderr[-2000:])
        for flag in sorted(used):
            assert flag in usage.stdout, f'{osp.basename(script)} passes {flag} to {tool}, which does not take it'
