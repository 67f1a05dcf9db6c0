"""Speed benchmark of the convex-loss readout solver (rfq_theory.glm).

Run ``python -m benchmarks.glm_benchmark [--json out.json]``.  Measures, for
a 2-layer model (d = 1000, widths 2000,1500, tanh/relu, sign weights,
n = 1200, lambda = 1e-2, Delta = 0.1, sign labels):

- one float-path logistic prediction (target < 50 ms) and one hinge prediction;
- one 30-digit logistic prediction (target < 10 s);
- a 100-point learning curve (n/d from 0.2 to 4) with the logistic loss on
  the float path, warm-started (target < 3 s).

Coefficient caches are warmed first (they are shared with every other
command); timings are medians of repeats with ``time.perf_counter``. The
machine, date, package versions and the load average before and after are
recorded with the numbers.
"""

from __future__ import annotations

import argparse
import os

from validation.machine import environment, median_time, report_json


def run(repeats=7):
    """Run every measurement; return a JSON-ready dict."""
    import numpy as np

    from rfq_theory import DeepRF
    from rfq_theory.glm import glm_sweep, predict_glm

    out = environment()
    model = DeepRF(1000, (2000, 1500), ("tanh", "relu"), "sign")
    args = (model, 1200, 1e-2, 0.1, "linear", "sign")
    predict_glm(*args, loss="logistic")  # warm coefficient caches
    predict_glm(*args, loss="logistic", digits=30)
    for loss in ("logistic", "hinge", "square"):
        med, lo, hi = median_time(lambda: predict_glm(*args, loss=loss), repeats)
        out[f"float_{loss}_point_ms"] = {"median": med * 1e3, "min": lo * 1e3, "max": hi * 1e3}
    med, lo, hi = median_time(lambda: predict_glm(*args, loss="logistic", digits=30), 3)
    out["digits30_logistic_point_s"] = {"median": med, "min": lo, "max": hi}
    grid = list(np.linspace(0.2, 4, 100) * 1000)
    med, lo, hi = median_time(
        lambda: glm_sweep(model, "samples", grid, None, 1e-2, 0.1, "linear", "sign", "logistic", progress=False), 3
    )
    out["curve100_logistic_float_s"] = {"median": med, "min": lo, "max": hi}
    out["load_average_after"] = list(os.getloadavg())
    out["targets"] = {"float_logistic_point_ms": 50, "digits30_logistic_point_s": 10, "curve100_logistic_float_s": 3}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    res = run(args.repeats)
    report_json(res, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
