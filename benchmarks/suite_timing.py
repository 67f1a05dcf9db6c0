"""Wall and CPU time of the test-suite (its budget and recorded results: docs/test-suite.md).

Run ``python -m benchmarks.suite_timing [--full] [--workers 2] [--json out.json]``.
Measures, side by side in one run, each in a fresh ``python -m pytest`` process:

- the fast subset (``-m "not slow"``) in one process (budget: 90 s on 2 quiet cores);
- the fast subset on ``--workers`` processes (pytest-xdist, ``-n N --dist loadfile``: the
  project's default, ``addopts`` in pyproject.toml, with one worker per core);
- with ``--full``, the whole suite in one process and on ``--workers`` processes (budget:
  6 minutes on 2 quiet cores).

Shared and virtual machines change speed from hour to hour, so each run also
times two fixed loads before and after the suites (a pure-Python loop and five
1500 x 1500 matrix products): compare runs by those before comparing suites.
CPU time is the children's user + system time (``resource.RUSAGE_CHILDREN``), so
it counts the pytest workers and the processes the tests start.  The numbers are
printed and written as JSON, never stored in the code.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time

from validation.machine import environment, load_average, package_versions, report_json

PASSED = re.compile(r"(\d+) passed")
#: the timed runs, in the order they run and are printed
RUNS = ("fast_one_process", "fast_workers", "full_one_process", "full_workers")


def time_pytest(args: list[str]) -> dict:
    """Run ``python -m pytest -q -p no:cacheprovider *args``; wall seconds, CPU seconds, counts, exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
    m = PASSED.search(tail)
    return {
        "args": args,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "passed": int(m.group(1)) if m else None,
        "exit_code": proc.returncode,
        "summary": tail,
    }


def calibration() -> dict:
    """Seconds of two fixed loads: ``sum(range(3e7))`` (interpreter) and five 1500 x 1500 float64 products (BLAS)."""
    import numpy as np

    t0 = time.perf_counter()
    sum(range(30_000_000))
    python_s = time.perf_counter() - t0
    a = np.random.default_rng(0).random((1500, 1500))
    t0 = time.perf_counter()
    for _ in range(5):
        a @ a
    return {"python_loop_s": round(python_s, 2), "matmul_s": round(time.perf_counter() - t0, 2)}


def run(workers: int = 2, full: bool = False) -> dict:
    """Every measurement of the module docstring, as a JSON-ready dict."""
    out = environment()
    out["packages"] = package_versions(["pytest", "pytest-xdist", "hypothesis", "numpy", "scipy", "sympy", "mpmath"])
    out["calibration_before"] = calibration()
    out["fast_one_process"] = time_pytest(["-m", "not slow", "-n", "0"])
    out["fast_workers"] = time_pytest(["-m", "not slow", "-n", str(workers), "--dist", "loadfile"])
    out["fast_workers"]["workers"] = workers
    if full:
        out["full_one_process"] = time_pytest(["-n", "0"])
        out["full_workers"] = time_pytest(["-n", str(workers), "--dist", "loadfile"])
        out["full_workers"]["workers"] = workers
    out["calibration_after"] = calibration()
    out["load_average_end"] = load_average()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2, help="pytest-xdist processes for the second run (default 2)")
    p.add_argument("--full", action="store_true", help="also time the whole suite (one process, then the workers)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results to PATH")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    result = run(args.workers, args.full)
    for key in ("calibration_before", "calibration_after"):
        print(f"{key:18s} {result[key]['python_loop_s']:.2f} s Python loop, {result[key]['matmul_s']:.2f} s matmul")
    for key in RUNS:
        if key in result:
            r = result[key]
            print(f"{key:18s} {r['wall_s']:7.1f} s wall {r['cpu_s']:7.1f} s CPU  {r['summary']}")
    report_json(result, args.json)
    return 1 if any(result.get(k, {}).get("exit_code") for k in RUNS) else 0


if __name__ == "__main__":
    sys.exit(main())
