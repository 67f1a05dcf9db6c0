"""Wall time of ``rfq validate`` with ``--workers 1`` and ``--workers 2``, side by side.

Runs the README validation example

    rfq validate --input-dim 800 --widths 1600,1200 --activations tanh,relu \\
        --quantizers none,sign,sign-scaled --vary samples --grid 0.5,1,1.5,2,3 --trials 8

twice in fresh processes, with BLAS limited to one thread in both (the
environment variables below; Dask workers get the same limit), and prints
the two wall times and their ratio together with the machine (CPU model,
cores), the load average before and after, the date and package versions.
The result is also written as JSON (``--json-out``).

    python benchmarks/dask_scaling.py                 # the README example
    python benchmarks/dask_scaling.py --trials 2 --input-dim 200 --widths 400,300   # a quick look

The speed-up is only meaningful on a quiet machine: check the load average.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from validation.machine import cpu_model, package_versions
from validation.montecarlo.executors import BLAS_ENV


def run(argv, workers: int, outdir: Path) -> dict:
    env = dict(os.environ, **{k: "1" for k in BLAS_ENV})
    cmd = [
        sys.executable,
        "-c",
        "import sys; from rfq_theory.cli import main; sys.exit(main())",
        "validate",
        *argv,
        "--workers",
        str(workers),
        "--out",
        str(outdir),
        "--no-progress",
        "--json",
    ]
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"rfq validate --workers {workers} failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    report = json.loads(proc.stdout)
    return {
        "workers": workers,
        "wall_s": wall,
        "run_wall_s": report["execution"]["wall_s"],
        "draws": report["execution"]["draws_run"],
        "verdict": report["summary"]["verdict"],
        "load_before": list(load),
        "load_after": list(os.getloadavg()),
        "mc_test": [r["mc_test"] for r in report["rows"]],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input-dim", default="800")
    p.add_argument("--widths", default="1600,1200")
    p.add_argument("--trials", default="8")
    p.add_argument("--json-out", default=str(Path(__file__).parent / "results" / "dask_scaling.json"))
    a = p.parse_args(argv)
    example = [
        "--input-dim",
        a.input_dim,
        "--widths",
        a.widths,
        "--activations",
        "tanh,relu",
        "--quantizers",
        "none,sign,sign-scaled",
        "--vary",
        "samples",
        "--grid",
        "0.5,1,1.5,2,3",
        "--trials",
        a.trials,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        one = run(example, 1, Path(tmp, "w1"))
        two = run(example, 2, Path(tmp, "w2"))
    same = one["mc_test"] == two["mc_test"]
    result = {
        "command": "rfq validate " + " ".join(example),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "versions": {
            "python": platform.python_version(),
            **package_versions(("rfq-theory", "numpy", "scipy", "dask", "distributed")),
        },
        "runs": [one, two],
        "speedup": one["wall_s"] / two["wall_s"],
        "identical_rows": same,
    }
    print(f"machine: {result['cpu']}, {result['cores']} cores; {result['date']}")
    print(f"command: {result['command']} (BLAS threads 1)")
    print(f"{'workers':>7} {'wall s':>9} {'draws':>6} {'load avg (1 min) before/after':>31}")
    for r in result["runs"]:
        print(
            f"{r['workers']:>7} {r['wall_s']:>9.1f} {r['draws']:>6} {r['load_before'][0]:>15.2f} / {r['load_after'][0]:.2f}"
        )
    print(f"speed-up workers 2 vs 1: {result['speedup']:.2f}x; rows identical: {same}")
    if a.json_out:
        Path(a.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json_out).write_text(json.dumps(result, indent=1))
        print(f"wrote {a.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
