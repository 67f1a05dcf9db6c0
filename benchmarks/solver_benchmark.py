"""Speed benchmark of the solver (its targets and recorded results: docs/solver-benchmark.md).

Run ``python -m benchmarks.solver_benchmark [--json out.json]``.  Measures

- one cached coefficient call for a float variance (target: well under 10 ms);
- a 200-point learning curve of a 3-layer model on the float path (target < 1 s);
- one 50-digit prediction of a 3-layer model, cold and warm (target < 2 s);
- one finite-size-route evaluation at width 2000 (one ``eigh``) against one
  asymptotic prediction (target: asymptotic >= 1000x faster, within 1%).

Timings are medians of repeats measured with ``time.perf_counter``; the
numbers are printed and written as JSON, never stored in the code.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from validation.machine import environment, load_average, median_time


def run(width=2000, repeats=5):
    """Run every measurement; return a JSON-ready dict."""

    from rfq_theory import DeepRF, coefficients, predict
    from rfq_theory.activation_coefficients import _moments_cached
    from rfq_theory.model import _layers_cached
    from rfq_theory.sweeps import sweep
    from validation.montecarlo.finite_size import finite_size_spectrum

    out = environment()
    coefficients("tanh", 0.8)
    med, lo, hi = median_time(lambda: coefficients("tanh", 0.8), 200)
    out["coefficient_call_cached_ms"] = med * 1e3

    model = DeepRF(1000, [2000, 1500, 1200], ["tanh", "relu", "erf"], "sign")
    grid = np.linspace(50, 5000, 200)
    model.layers(17)  # coefficients are computed once per model
    med, lo, hi = median_time(lambda: sweep(model, "samples", grid, ridge=1e-3, noise=0.1, progress=False), repeats)
    out["learning_curve_200_points_float_s"] = med

    _moments_cached.cache_clear()
    _layers_cached.cache_clear()
    t0 = time.perf_counter()
    predict(model, 1200, "1e-3", "0.1", digits=50)
    out["prediction_50_digits_cold_s"] = time.perf_counter() - t0
    med, lo, hi = median_time(lambda: predict(model, 1200, "1e-3", "0.1", digits=50), repeats)
    out["prediction_50_digits_warm_s"] = med

    fs_model = DeepRF(width // 2, [width], ["tanh"], "sign")
    t0 = time.perf_counter()
    spectrum = finite_size_spectrum(fs_model, seed=0)
    finite = spectrum.predict(0.75 * width, 1e-3, 0.1)
    out["finite_size_width"] = width
    out["finite_size_route_s"] = time.perf_counter() - t0
    predict(fs_model, 0.75 * width, 1e-3, 0.1)
    med, lo, hi = median_time(lambda: predict(fs_model, 0.75 * width, 1e-3, 0.1), 50)
    theory = predict(fs_model, 0.75 * width, 1e-3, 0.1).test_error
    out["asymptotic_point_s"] = med
    out["speedup_vs_finite_size"] = out["finite_size_route_s"] / med
    out["relative_gap_finite_size"] = abs(finite.test_error - theory) / theory
    out["load_average_after"] = load_average()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    parser.add_argument("--width", type=int, default=2000, help="width of the finite-size comparison")
    args = parser.parse_args(argv)
    res = run(args.width)
    for key, val in res.items():
        print(f"{key:36s} {val:.4g}" if isinstance(val, float) else f"{key:36s} {val}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
