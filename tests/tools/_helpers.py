"""Shared helpers of the Runner tests: run a tool in a subprocess, read the metrics it wrote."""
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(script, *args, timeout=900, env=None):
    """Runs ``tools/<script> args`` from the repository root (``env``: variables to add); fails the test
    with its output on error."""
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools', script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {})))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def metrics(work_dir):
    """The metrics mmengine's test loop wrote (the newest ``<timestamp>/<timestamp>.json``)."""
    found = []
    for root, _, files in os.walk(work_dir):
        for f in files:
            if f.endswith('.json') and f[:8].isdigit() and 'scalars' not in f:
                found.append(osp.join(root, f))
    with open(sorted(found)[-1]) as f:
        return json.load(f)


def kill_point(low, high):
    """The iteration after which a SIGKILL test kills its run, in ``[low, high]``: drawn from a seed that
    is ``$COMA_KILL_SEED`` if set, else a fresh one. Returns ``(k, label)``; the label names the seed
    (``k=4, COMA_KILL_SEED=123``), to put in every failure message so that a failing point can be rerun."""
    import random
    seed = int(os.environ.get('COMA_KILL_SEED', random.SystemRandom().randrange(2 ** 32)))
    k = random.Random(seed).randint(low, high)
    return k, f'killed after iteration {k}; rerun with COMA_KILL_SEED={seed}'


def kill_after(cmd, pattern, k, per_epoch=None, env=None):
    """Starts ``cmd`` and SIGKILLs it at the first output line whose iteration is ``>= k``: ``pattern``'s
    group 1, or with ``per_epoch`` (iterations an epoch) ``(group 1 - 1) * per_epoch + group 2`` (an
    epoch-based log line, ``Epoch(train) [E][I/N]``).

    ``env``: variables to add. Returns the return code (``-SIGKILL`` unless the run ended first).
    """
    import re
    import signal
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **(env or {})))
    for line in proc.stdout:
        m = re.search(pattern, line)
        done = m and (int(m.group(1)) if per_epoch is None else (int(m.group(1)) - 1) * per_epoch + int(m.group(2)))
        if m and done >= k:
            proc.send_signal(signal.SIGKILL)
            break
    return proc.wait()
