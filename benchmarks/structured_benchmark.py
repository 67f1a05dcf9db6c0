"""Speed of predictions on structured inputs (``x ~ N(0, Sigma)``, rfq_theory.input_spectrum).

Run ``python -m benchmarks.structured_benchmark [--json out.json]``.  Measures,
for a 2-layer model (widths 1.5 d, d; tanh/relu; sign weights; n = 2 d,
lambda = 1e-3, Delta = 0.1) on a ``power:0.7`` spectrum with a ``power:1``
teacher:

- one float-path prediction at ``d = 10^4`` eigenvalues (target < 50 ms), and
  the isotropic model of the same sizes for comparison;
- one 30-digit prediction at ``d = 1000``, warm (spectrum and coefficients cached);
- a 100-point learning curve at ``d = 1000`` on the vectorized float solver.

Caches are warmed first; timings are medians of repeats with
``time.perf_counter``. The machine, date, versions and load averages are
recorded with the numbers.
"""

from __future__ import annotations

import argparse
import os

from validation.machine import environment, median_time, report_json


def run(repeats=7):
    """Run every measurement; return a JSON-ready dict."""
    import numpy as np

    from rfq_theory import DeepRF, predict, solve_batch

    out = environment()
    for d in (1000, 10000):
        model = DeepRF(d, (1.5 * d, d), ("tanh", "relu"), "sign", "power:0.7", "power:1")
        iso = DeepRF(d, (1.5 * d, d), ("tanh", "relu"), "sign")
        predict(model, 2 * d, 1e-3, 0.1)  # warm the caches
        for name, m in (("structured", model), ("isotropic", iso)):
            med, lo, hi = median_time(lambda m=m: predict(m, 2 * d, 1e-3, 0.1), repeats)
            out[f"float_point_{name}_d{d}_ms"] = {"median": med * 1e3, "min": lo * 1e3, "max": hi * 1e3}
    model = DeepRF(1000, (1500, 1000), ("tanh", "relu"), "sign", "power:0.7", "power:1")
    predict(model, 2000, "1e-3", "0.1", digits=30)
    med, lo, hi = median_time(lambda: predict(model, 2000, "1e-3", "0.1", digits=30), 3)
    out["digits30_point_d1000_s"] = {"median": med, "min": lo, "max": hi}
    grid = np.geomspace(100, 8000, 100)
    med, lo, hi = median_time(lambda: solve_batch(model, grid, 1e-3, 0.1), repeats)
    out["curve100_float_d1000_s"] = {"median": med, "min": lo, "max": hi}
    out["load_average_after"] = list(os.getloadavg())
    out["targets"] = {"float_point_structured_d10000_ms": 50}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    report_json(run(args.repeats), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
