"""Shared helpers of the benchmark tools: isolated worker processes, medians, peak memory."""
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cuda_sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_median(fn: Callable[[], None], repeats: int, warmup: int = 1) -> Dict[str, float]:
    """Runs ``fn`` ``warmup`` times, then ``repeats`` timed times; returns the median and all times."""
    for _ in range(warmup):
        fn()
    cuda_sync()
    times: List[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        cuda_sync()
        times.append(time.perf_counter() - start)
    return dict(median_s=statistics.median(times), times_s=times)


def run_worker(script: str, spec: Dict, timeout: int = 1800, worker: Callable[[Dict], Dict] = None) -> Dict:
    """Runs ``script --worker SPEC`` in a fresh process (so peak memory is its own); returns its JSON.

    On CUDA, where the allocator's peak statistics can be reset, ``worker`` runs in this process
    instead (one interpreter start instead of one per row).
    """
    if worker is not None and spec.get('device') == 'cuda':
        try:
            return worker(spec)
        except Exception as err:  # noqa: BLE001  (report the row as failed, go on with the others)
            return dict(spec, error=f'{type(err).__name__}: {err}')
        finally:
            import gc
            gc.collect()
            torch.cuda.empty_cache()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, script, '--worker', json.dumps(spec)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode or not lines:
        return dict(spec, error=(proc.stderr or proc.stdout)[-2000:])
    return json.loads(lines[-1])


def machine_load() -> Dict:
    """What else loads this machine: load averages and the busiest other processes (by CPU %)."""
    info = dict(loadavg_1_5_15=list(os.getloadavg()), cpus=os.cpu_count())
    try:
        out = subprocess.run(['ps', '-eo', 'pcpu,comm', '--sort=-pcpu'], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()[1:6]
        info['top_processes'] = [ln.strip() for ln in out]
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def compile_fn(fn: Callable, fullgraph: bool) -> Callable:
    """``torch.compile`` in its default mode with static shapes, as a new user would."""
    return torch.compile(fn, fullgraph=fullgraph, dynamic=False)


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f'CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)'
