"""Speed benchmark of the scaling laws (:mod:`rfq_theory.scaling_laws`) and the fits of docs/scaling-laws.md.

Run ``python -m benchmarks.scaling_benchmark [--json out.json]``.  Measures, for the
2-layer model ``d = 1000``, widths ``2000, 1500``, activations ``tanh, relu``, input
spectrum ``power:1.5``, teacher ``power:1``, ridge ``1e-4``, a 100-point log grid of
``n`` from 2 to 200:

- one quantizer (full precision), cold (caches emptied: layer coefficients and the
  chain's base computed) and warm (target < 2 s for the 100-point curve);
- the four default quantizers side by side (none, sign, sign-scaled, uniform:4), cold and warm;
- the optimal ridge at every point, one quantizer, warm (no target).

Then it computes the fits of the settings in :data:`SETTINGS` (the tables of the
docs page): exponent, its standard error, constant, limit and local-slope range per
quantizer.  Timings are medians of repeats (``time.perf_counter``); the load average
is recorded before and after (the machine may be shared).  Numbers are printed and
written as JSON, never stored in the code.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from validation.machine import environment, median_time, report_json

#: the quantizers compared in the settings
QUANTIZERS = ("none", "sign", "sign-scaled", "uniform:2", "uniform:4")

#: (name, model arguments, scaling_law keyword arguments) of the docs page's tables
SETTINGS = (
    (
        "tanh-relu-samples",
        dict(
            input_dim=1000, widths=(2000, 1500), activations=("tanh", "relu"), spectrum="power:1.5", teacher="power:1"
        ),
        dict(vary="samples", grid=("geom", 0.002, 0.2, 100), ridge=1e-4),
    ),
    (
        "erf-erf-samples-ridgeless",
        dict(
            input_dim=10000, widths=(20000, 15000), activations=("erf", "erf"), spectrum="power:2", teacher="power:0.5"
        ),
        dict(vary="samples", grid=("geom", 0.001, 0.05, 60), ridge=0.0),
    ),
    (
        "erf-erf-samples-ridgeless-d100000",
        dict(
            input_dim=100000,
            widths=(200000, 150000),
            activations=("erf", "erf"),
            spectrum="power:2",
            teacher="power:0.5",
        ),
        dict(vary="samples", grid=("geom", 1e-4, 0.1, 40), ridge=0.0, fit_range=(0.01, 0.1)),
    ),
    (
        "tanh-relu-widths",
        dict(
            input_dim=1000, widths=(2000, 1500), activations=("tanh", "relu"), spectrum="power:1.5", teacher="power:1"
        ),
        dict(vary="widths", grid=("geom", 1.0, 1000.0, 60), ridge=1e-4, samples=300),
    ),
)


def _model(spec):
    from rfq_theory import DeepRF

    return DeepRF(spec["input_dim"], spec["widths"], spec["activations"], "none", spec["spectrum"], spec["teacher"])


def settings_tables() -> dict:
    """The fit table of every setting in :data:`SETTINGS` (numbers as floats)."""
    import numpy as np

    from rfq_theory import scaling_law

    out = {}
    for name, spec, kw in SETTINGS:
        kw = dict(kw)
        _, lo, hi, num = kw.pop("grid")
        t0 = time.perf_counter()
        law = scaling_law(_model(spec), grid=np.geomspace(lo, hi, num), ratio=True, quantizers=QUANTIZERS, **kw)
        out[name] = {
            "model": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()},
            "grid": {
                "low": lo,
                "high": hi,
                "points": num,
                "units": "ratio to d" if kw["vary"] == "samples" else "factor",
            },
            "settings": {k: v for k, v in kw.items()},
            "fits": law.table(),
            "messages": law.messages,
            "seconds": time.perf_counter() - t0,
        }
    return out


def run(repeats=5):
    """Run every measurement; return a JSON-ready dict."""
    import numpy as np

    from rfq_theory import clear_caches, scaling_law

    out = environment()
    spec = SETTINGS[0][1]
    model = _model(spec)
    grid = np.geomspace(2.0, 200.0, 100)

    def one():
        return scaling_law(model, "samples", grid, ridge=1e-4, quantizers=("none",))

    def four():
        return scaling_law(model, "samples", grid, ridge=1e-4)

    clear_caches()
    t0 = time.perf_counter()
    law = one()
    out["curve_100_points_one_quantizer_cold_s"] = time.perf_counter() - t0
    assert law.diagnostics.converged and law.fit_points[0] == 100
    med, lo, hi = median_time(one, repeats)
    out["curve_100_points_one_quantizer_warm_s"] = {"median": med, "min": lo, "max": hi}
    clear_caches()
    t0 = time.perf_counter()
    four()
    out["curve_100_points_four_quantizers_cold_s"] = time.perf_counter() - t0
    med, lo, hi = median_time(four, repeats)
    out["curve_100_points_four_quantizers_warm_s"] = {"median": med, "min": lo, "max": hi}
    med, lo, hi = median_time(lambda: scaling_law(model, "samples", grid, ridge="optimal", quantizers=("none",)), 1)
    out["curve_100_points_optimal_ridge_warm_s"] = med
    out["target_s"] = 2.0
    out["settings"] = settings_tables()
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
