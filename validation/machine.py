"""What a measurement ran on, and how it was timed: shared by the timing harness and the benchmark scripts."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

__all__ = ["cpu_model", "environment", "load_average", "median_time", "package_versions", "report_json"]


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s, read from /proc/cpuinfo), else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages, rounded to 2 decimals (a measurement's context)."""
    return [round(x, 2) for x in os.getloadavg()]


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, float, float]:
    """Median, minimum and maximum wall time of ``repeats`` calls of ``fn`` (``time.perf_counter``)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def environment() -> dict:
    """Where and when a benchmark runs: Python, platform, CPU, package versions, date, load average."""
    import sys

    out = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu_model()}
    out["cpu_count"] = os.cpu_count()
    versions = package_versions(("rfq-theory", "numpy", "scipy", "mpmath", "sympy"))
    out.update({pkg.replace("-", "_"): v for pkg, v in versions.items()})
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out["load_average_before"] = load_average()
    return out


def package_versions(packages) -> dict:
    """``{distribution name: installed version or None}`` for ``packages``."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def report_json(result: dict, path: str | None) -> None:
    """Print ``result`` as indented JSON and, with ``path``, write it there too."""
    import json

    text = json.dumps(result, indent=2)
    print(text)
    if path:
        with open(path, "w") as fh:
            fh.write(text + "\n")
