"""Shared helpers of the benchmarks: isolated worker processes, medians, peak memory."""
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import torch

#: the folder that holds the ``coma`` package, put on a worker's PYTHONPATH (the GPU machines run from a
#: checkout without installing it)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def measure(fn: Callable[[], None], repeats: int, device: torch.device, warmup: int = 1) -> Dict[str, float]:
    """Times ``fn`` as the benchmark rows do: a first call (which compiles, when compiling; its time is
    ``first_s``), ``warmup`` more, then the median of ``repeats``; ``peak_mib`` is the memory growth
    over the state before the first call (CUDA allocator peak, or peak RSS on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = peak_rss_mib()
    start = time.perf_counter()
    fn()
    cuda_sync()
    first = time.perf_counter() - start
    result = time_median(fn, repeats, warmup=warmup)
    peak = (torch.cuda.max_memory_allocated() - base) / 2 ** 20 if device.type == 'cuda' else peak_rss_mib() - base
    return dict(result, first_s=first, peak_mib=peak)


def emit_row(spec: Dict, result: Dict, model: torch.nn.Module, **extra) -> Dict:
    """A benchmark row: the spec, :func:`measure`'s result (its first call reported as ``compile_s``
    when compiling), ``extra`` and the model's parameter count; printed as JSON (the line
    :func:`run_worker` reads) and returned."""
    result = dict(result)
    first = result.pop('first_s')
    row = dict(spec, **result, **extra, params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    if spec.get('compile'):
        row['compile_s'] = first
    print(json.dumps(row))
    return row


def run_worker(module: str, spec: Dict, timeout: float = 1800, worker: Callable[[Dict], Dict] = None) -> Dict:
    """Runs ``python -m module --worker SPEC`` in a fresh process (so peak memory is its own), killed after
    ``timeout`` seconds, compilation included: a slow compilation costs its own row, not the rows after
    it. Returns the worker's JSON row with ``status='ok'``, or the spec with ``status`` ``'timeout'`` or
    ``'error'`` and an ``error`` text. (``worker`` is accepted for the callers' symmetry; rows always run
    in their own process, since a time limit inside one can strike in the middle of a compilation.)
    """
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, '-m', module, '--worker', json.dumps(spec)], capture_output=True,
                              text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(spec, status='timeout', error=f'TimeoutError: row ran past {timeout:.0f} s (killed)',
                    wall_s=time.perf_counter() - start)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode or not lines:
        return dict(spec, status='error', error=(proc.stderr or proc.stdout)[-2000:], wall_s=time.perf_counter() - start)
    return dict(json.loads(lines[-1]), status='ok', wall_s=time.perf_counter() - start)


def run_rows(module: str, specs: List[Dict], worker: Callable[[Dict], Dict],
             summarise: Callable[[List[Dict]], Dict], args) -> Dict:
    """Runs a benchmark tool's rows: the eager ones of ``specs`` first, then the compiled ones, each in
    :func:`run_worker` (``args.row_timeout`` seconds at most), printing each row and rewriting the
    JSON report at ``args.json`` after each, so that a run stopped from outside keeps every finished
    row. The report holds the machine, the tool's settings (``args``: batch, repeats, amp, note), the
    rows, ``summarise(rows)`` and the machine's load at the start. Returns the final report."""
    load = dict(machine_load(), note=args.note)

    def report(rows: List[Dict]) -> Dict:
        return dict(device=device_name(), batch=args.batch, repeats=args.repeats, amp=args.amp, rows=list(rows),
                    summary=summarise(rows), machine_load=load, torch=torch.__version__)

    rows: List[Dict] = []
    for spec in sorted(specs, key=lambda s: bool(s.get('compile'))):  # stable: the order within each kind stays
        rows.append(run_worker(module, spec, timeout=args.row_timeout, worker=worker))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != 'times_s'}), flush=True)
        write_report(report(rows), args.json)
    out = report(rows)
    print(json.dumps(out['summary'], indent=1))
    return out


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


def worker_main(worker: Callable[[Dict], Dict]) -> None:
    """The ``python -m coma.benchmarks.<name> --worker SPEC`` entry that :func:`run_worker` starts."""
    if len(sys.argv) != 3 or sys.argv[1] != '--worker':
        raise SystemExit(f'usage: python -m {worker.__module__} --worker SPEC_JSON (the tools/benchmark_*.py '
                         f'scripts start these processes)')
    worker(json.loads(sys.argv[2]))


def write_report(report: Dict, path: str) -> None:
    """Writes a benchmark's JSON report to ``path`` (its folder is made), whole or not at all: a run
    stopped while writing leaves the previous report."""
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + '.tmp', 'w') as f:
            json.dump(report, f, indent=1)
        os.replace(path + '.tmp', path)
