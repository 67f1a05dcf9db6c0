"""Benchmark of the vectorized convex-loss solver (:mod:`rfq_theory.glm_lanes`) on phase maps.

Run ``python -m benchmarks.glm_phase_benchmark [--side 100] [--loss logistic] [--json FILE]``.
Maps the classification error of a logistic (or hinge) readout with sign
labels over ``samples x ridge`` (``side x side`` points, ``n/d`` in
0.3..4, ridge 1e-3..10 log-spaced; one tanh layer, ``d = 100``, width 200,
sign weights, noise 0.1) and times, in the same run:

- the whole map (vectorized lanes, scalar fallback included) per point;
- scalar float :func:`rfq_theory.glm.predict_glm` per point on random cells
  of the same map, and the largest relative difference from the map there.

The ratio of the two per-point times is the speed-up.  The load average is
recorded before and after (the machine may be shared); numbers are printed
and written as JSON, never stored in the code.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from validation.machine import cpu_model, load_average, report_json

MODEL_ARGS = dict(input_dim=100, widths=(200,), activations=("tanh",), quantizers="sign")
NOISE = 0.1


def run(side=100, loss="logistic", scalar_points=40, seed=0) -> dict:
    """Time a ``side x side`` map against scalar solves of ``scalar_points`` of its cells."""
    from rfq_theory import DeepRF
    from rfq_theory.glm import predict_glm
    from rfq_theory.phase import phase_map
    from rfq_theory.readouts import ConvexLossReadout

    model = DeepRF(**MODEL_ARGS)
    x, y = f"samples:0.3:4:{side}", f"ridge:log:1e-3:10:{side}"
    out = {"side": side, "points": side * side, "loss": loss, "load_before": load_average(), "cpu": cpu_model()}
    predict_glm(model, 100, 0.1, NOISE, loss=loss)  # warm: coefficients cached
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = phase_map(model, x, y, noise=NOISE, readout=ConvexLossReadout(loss))
    t_map = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    cells = rng.choice(pm.values.size, scalar_points, replace=False)
    worst = 0.0
    t0 = time.perf_counter()
    for cell in cells:
        i, j = divmod(int(cell), side)
        p = predict_glm(model, pm.x[j] * 100, pm.y[i], NOISE, loss=loss)
        worst = max(worst, abs(pm.values[i, j] - p.test_error) / abs(p.test_error))
    t_scalar = (time.perf_counter() - t0) / scalar_points
    out.update(
        map_seconds=t_map,
        map_per_point=t_map / pm.values.size,
        scalar_per_point=t_scalar,
        speedup=t_scalar / (t_map / pm.values.size),
        n_failed=pm.n_failed,
        n_fallback=pm.n_fallback,
        max_rel_diff=worst,
        load_after=load_average(),
    )
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=100)
    ap.add_argument("--loss", default="logistic", choices=("logistic", "hinge", "square"))
    ap.add_argument("--scalar-points", type=int, default=40)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    report_json(run(args.side, args.loss, args.scalar_points), args.json)


if __name__ == "__main__":
    main()
