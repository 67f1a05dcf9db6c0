"""Speed benchmark of the layer spectra (:mod:`rfq_theory.spectra`).

Run ``python -m benchmarks.spectrum_benchmark [--json out.json]``.  Measures, for the
3-layer model ``d = 1000``, widths ``2000, 1500, 1000``, activations ``tanh, relu, erf``:

- a 400-point density of the top layer on the float path (target < 1 s), cold
  (first call, layer coefficients computed) and warm (coefficients cached);
- all three layers plus the conjugate kernel (n = 1200), 400 points each, warm;
- the density at one point to 30 digits (target < 5 s), cold (coefficients at
  40 digits computed) and warm.

Timings are medians of repeats measured with ``time.perf_counter``; the load
average of the machine is recorded before and after (the machine may be
shared).  Numbers are printed and written as JSON, never stored in the code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from validation.machine import environment, median_time, report_json


def run(repeats=5):
    """Run every measurement; return a JSON-ready dict."""
    import mpmath

    from rfq_theory import DeepRF, clear_caches
    from rfq_theory.spectra import density_at, layer_spectrum, spectrum

    out = environment()
    model = DeepRF(1000, (2000, 1500, 1000), ("tanh", "relu", "erf"))

    clear_caches()
    t0 = time.perf_counter()
    s = layer_spectrum(model, 3, points=400)
    out["float_400_points_top_layer_cold_s"] = time.perf_counter() - t0
    assert len(s.x) == 400 and s.converged
    med, lo, hi = median_time(lambda: layer_spectrum(model, 3, points=400), repeats)
    out["float_400_points_top_layer_warm_s"] = {"median": med, "min": lo, "max": hi}
    med, lo, hi = median_time(lambda: spectrum(model, samples=1200, points=400), repeats)
    out["float_400_points_3_layers_and_kernel_warm_s"] = {"median": med, "min": lo, "max": hi}

    clear_caches()
    t0 = time.perf_counter()
    value = density_at(model, "0.3", digits=30)
    out["digits30_one_point_cold_s"] = time.perf_counter() - t0
    med, lo, hi = median_time(lambda: density_at(model, "0.3", digits=30), repeats)
    out["digits30_one_point_warm_s"] = {"median": med, "min": lo, "max": hi}
    out["digits30_value_at_0.3"] = mpmath.nstr(value, 30)
    out["load_average_after"] = list(os.getloadavg())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    report_json(run(args.repeats), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
