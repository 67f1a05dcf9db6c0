"""Benchmark of the vectorized solver (:mod:`rfq_theory.batch`) and phase maps.

Run ``python -m benchmarks.phase_benchmark [--json benchmarks/results/phase_cpu.json]``.
Measures, side by side in one run, on a 3-layer model (tanh, relu, erf; sign
weights; ``d = 1000``, widths 2000, 1500, 1000; ridge 1e-3, noise 0.1):

- time per point of a ``side x side`` map (default 316 x 316, about 10^5
  points) on the vectorized path against the scalar float path
  (``predict`` on a random subset of the same points, one model per point as
  a width axis needs);
- a 300 x 300 fixed-ridge map and a 300 x 300 optimal-error map (medians);
- a 300 x 300 map at ridge 1e-6 with the double-double tier;
- agreement with 30-digit mpmath (``predict(..., digits=30)`` at exactly the
  lanes' binary inputs) on random lanes over the whole plane, including
  lanes within 1e-7..1e-3 of the ridgeless threshold and ridges down to 1e-9;
- peak resident memory of a 10^5- and a 10^6-point map (fresh processes).

The load average is recorded before and after each measurement (the machine
may be shared).  Numbers are printed and written as JSON, never stored in
the code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from validation.machine import cpu_model, load_average, median_time

MODEL_ARGS = dict(input_dim=1000, widths=(2000, 1500, 1000), activations=("tanh", "relu", "erf"), quantizers="sign")
RIDGE = 1e-3
NOISE = 0.1


def _model():
    from rfq_theory import DeepRF

    return DeepRF(**MODEL_ARGS)


def per_point(side=316, scalar_points=400, repeats=3, seed=0):
    """Vectorized map vs scalar ``predict`` per point, same points, same run."""
    from rfq_theory import predict
    from rfq_theory.phase import phase_map
    from rfq_theory.sweeps import model_at

    model = _model()
    out = {"side": side, "points": side * side, "load_before": load_average()}
    x = f"samples:0.1:4:{side}"
    y = f"width:0.1:4:{side}"
    pm = phase_map(model, x, y, ridge=RIDGE, noise=NOISE)  # warm: coefficients cached
    t_vec = median_time(lambda: phase_map(model, x, y, ridge=RIDGE, noise=NOISE), repeats)[0]
    rng = np.random.default_rng(seed)
    ii = rng.integers(0, side, scalar_points)
    jj = rng.integers(0, side, scalar_points)
    d = 1000.0
    predict(model, 1200, RIDGE, NOISE)
    t0 = time.perf_counter()
    worst = 0.0
    for i, j in zip(ii, jj):
        m, n, lam = model_at(model, "width", float(pm.y[i]) * d, float(pm.x[j]) * d, RIDGE)
        p = predict(m, n, lam, NOISE)
        a, b = pm.values[i, j], float(p.test_error)
        worst = max(worst, 0.0 if a == b else abs(a - b) / abs(b))
    t_scalar = (time.perf_counter() - t0) / scalar_points
    out.update(
        vector_map_s=t_vec,
        vector_us_per_point=t_vec / (side * side) * 1e6,
        scalar_points=scalar_points,
        scalar_us_per_point=t_scalar * 1e6,
        speedup=t_scalar / (t_vec / (side * side)),
        map_fallback_points=pm.n_fallback,
        map_failed_points=pm.n_failed,
        max_rel_diff_vs_scalar_float=worst,
        load_after=load_average(),
    )
    return out


def maps_300(repeats=3):
    """300 x 300 fixed-ridge and optimal-error maps."""
    from rfq_theory.phase import phase_map

    model = _model()
    out = {"load_before": load_average()}
    x, y = "samples:0.1:4:300", "width:0.1:4:300"
    phase_map(model, x, y, ridge=RIDGE, noise=NOISE)
    out["fixed_ridge_map_s"] = median_time(lambda: phase_map(model, x, y, ridge=RIDGE, noise=NOISE), repeats)[0]
    out["ridgeless_map_s"] = median_time(lambda: phase_map(model, x, y, ridge=0, noise=NOISE), repeats)[0]
    pm = phase_map(model, x, y, quantity="optimal_error", noise=NOISE)
    out["optimal_error_map_s"] = median_time(
        lambda: phase_map(model, x, y, quantity="optimal_error", noise=NOISE), repeats
    )[0]
    out["optimal_over_fixed"] = out["optimal_error_map_s"] / out["fixed_ridge_map_s"]
    out["optimal_map_fallback_points"] = pm.n_fallback
    out["optimal_map_failed_points"] = pm.n_failed
    out["load_after"] = load_average()
    return out


def random_lanes(rng, size, d=1000.0):
    """Lanes over the whole plane n/d, k_L/d in [0.1, 4]; ridge 0 or log-uniform in [1e-9, 1e2];
    a fifth of the lanes within 1e-7..1e-3 (relative) of the ridgeless threshold n = k_L."""
    n = rng.uniform(0.1, 4, size) * d
    kL = rng.uniform(0.1, 4, size) * d
    lam = 10 ** rng.uniform(-9, 2, size)
    kind = rng.integers(0, 5, size)
    lam = np.where(kind == 0, 0.0, lam)
    near = kind == 1
    n = np.where(near, kL * (1 + rng.choice([-1, 1], size) * 10 ** rng.uniform(-7, -3, size)), n)
    lam = np.where(near, np.where(rng.random(size) < 0.5, 0.0, 1e-8), lam)
    noise = rng.uniform(0, 0.5, size)
    return n, kL, lam, noise, kind


def accuracy(lanes=1000, seed=1):
    """Largest relative difference to 30-digit mpmath over random lanes, for both fallback tiers."""
    import mpmath

    from rfq_theory import predict
    from rfq_theory.batch import solve_batch

    model = _model()
    rng = np.random.default_rng(seed)
    n, kL, lam, noise, kind = random_lanes(rng, lanes)
    out = {"lanes": lanes, "load_before": load_average()}
    widths = (2000.0, 1500.0, kL)
    solve_batch(model, np.array([1200.0]), 1e-9, fallback="dd")  # warm: 34-digit coefficients
    results = {}
    for mode in ("mpmath", "dd"):
        t0 = time.perf_counter()
        results[mode] = solve_batch(model, n, lam, noise, widths=widths, fallback=mode, progress=False)
        out[f"solve_s_{mode}"] = time.perf_counter() - t0
    regions = ("ridgeless", "near_threshold", "ridge_below_1e-6", "other")
    worst = {mode: {"test_error": 0.0, "train_error": 0.0} for mode in results}
    worst_by = {mode: dict.fromkeys(regions, 0.0) for mode in results}
    bad = {mode: [] for mode in results}
    x = mpmath.mpf
    t0 = time.perf_counter()
    for i in range(lanes):
        m = model.with_widths((2000, 1500, x(float(kL[i]))))
        p = predict(m, x(float(n[i])), x(float(lam[i])), x(float(noise[i])), digits=30)
        group = (
            "near_threshold"
            if kind[i] == 1
            else "ridgeless"
            if lam[i] == 0
            else "ridge_below_1e-6"
            if lam[i] < 1e-6
            else "other"
        )
        for mode, res in results.items():
            for key in ("test_error", "train_error"):
                got, want = getattr(res, key)[i], getattr(p, key)
                if mpmath.isinf(want) or abs(want) < 1e-300:
                    err = 0.0 if (got == float(want)) else float("inf")
                else:
                    err = float(abs(mpmath.mpf(float(got)) - want) / abs(want))
                worst[mode][key] = max(worst[mode][key], err)
                worst_by[mode][group] = max(worst_by[mode][group], err)
                if not err < 1e-9:
                    bad[mode].append([int(i), key, float(n[i]), float(kL[i]), float(lam[i]), err])
    out["mpmath_reference_s"] = time.perf_counter() - t0
    for mode, res in results.items():
        out[mode] = {
            "max_rel_err": worst[mode],
            "max_rel_err_by_region": worst_by[mode],
            "lanes_over_1e9": len(bad[mode]),
            "examples_over_1e9": bad[mode][:10],
            "ill_conditioned_lanes": res.n_fallback,
            "double_double_lanes": int(np.count_nonzero(res.double_double)),
            "failed_lanes": res.n_failed,
        }
    out["regimes"] = {
        name: int(np.count_nonzero(results["dd"].regime == k))
        for k, name in enumerate(
            ("ridge", "ridgeless-underparameterized", "ridgeless-overparameterized", "interpolation-threshold")
        )
    }
    out["load_after"] = load_average()
    return out


def tiny_ridge_map(repeats=3):
    """300 x 300 map at ridge 1e-6 (many ill-conditioned points) with the double-double tier."""
    from rfq_theory.phase import phase_map

    model = _model()
    out = {"ridge": 1e-6, "load_before": load_average()}
    x, y = "samples:0.1:4:300", "width:0.1:4:300"
    pm = phase_map(model, x, y, ridge=1e-6, noise=NOISE, fallback="dd")
    out["map_s_dd"] = median_time(lambda: phase_map(model, x, y, ridge=1e-6, noise=NOISE, fallback="dd"), repeats)[0]
    out["ill_conditioned_points"] = pm.n_fallback
    out["failed_points"] = pm.n_failed
    out["messages"] = pm.messages
    out["load_after"] = load_average()
    return out


_MEMORY_CHILD = """
import resource, sys, time
from rfq_theory import DeepRF
from rfq_theory.phase import phase_map
side = int(sys.argv[1])
m = DeepRF(1000, (2000, 1500, 1000), ("tanh", "relu", "erf"), "sign")
t0 = time.perf_counter()
pm = phase_map(m, f"samples:0.1:4:{side}", f"width:0.1:4:{side}", ridge=1e-3, noise=0.1, progress=False)
t = time.perf_counter() - t0
print(side * side, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, t, pm.n_failed, pm.n_fallback)
"""


def memory(sides=(100, 316, 1000)):
    """Peak RSS (KiB) of maps of growing size, each in a fresh process."""
    out = {"load_before": load_average(), "runs": []}
    for side in sides:
        r = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(side)], capture_output=True, text=True, check=True)
        pts, rss, t, failed, fb = r.stdout.split()
        out["runs"].append(
            {
                "points": int(pts),
                "peak_rss_mib": int(rss) / 1024,
                "seconds": float(t),
                "failed": int(failed),
                "fallback": int(fb),
            }
        )
    runs = out["runs"]
    if len(runs) >= 2:
        a, b = runs[-2], runs[-1]
        out["mib_per_million_points"] = (b["peak_rss_mib"] - a["peak_rss_mib"]) / (b["points"] - a["points"]) * 1e6
    out["load_after"] = load_average()
    return out


def run(side=316, scalar_points=400, lanes=1000, repeats=3):
    """Every measurement; a JSON-ready dict."""
    import mpmath
    import scipy

    import rfq_theory

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "mpmath": mpmath.__version__,
        "rfq_theory": rfq_theory.__version__,
        "model": {k: list(v) if isinstance(v, tuple) else v for k, v in MODEL_ARGS.items()},
        "ridge": RIDGE,
        "noise": NOISE,
    }
    out = {"info": info}
    out["per_point"] = per_point(side, scalar_points, repeats)
    print(json.dumps(out["per_point"], indent=1), flush=True)
    out["maps_300"] = maps_300(repeats)
    print(json.dumps(out["maps_300"], indent=1), flush=True)
    out["tiny_ridge_map"] = tiny_ridge_map(repeats)
    print(json.dumps(out["tiny_ridge_map"], indent=1), flush=True)
    out["memory"] = memory()
    print(json.dumps(out["memory"], indent=1), flush=True)
    if lanes:
        out["accuracy"] = accuracy(lanes)
        print(json.dumps(out["accuracy"], indent=1), flush=True)
    pp, mp = out["per_point"], out["maps_300"]
    acc = out.get("accuracy", {})
    out["targets"] = {
        "speedup_ge_100": pp["speedup"] >= 100,
        "fixed_map_300_under_1s": mp["fixed_ridge_map_s"] < 1.0,
        "optimal_within_10x": mp["optimal_over_fixed"] <= 10,
        "all_lanes_within_1e-9": (acc["mpmath"]["lanes_over_1e9"] == 0 and acc["dd"]["lanes_over_1e9"] == 0)
        if acc
        else None,
        "million_points_under_24GiB": out["memory"]["runs"][-1]["peak_rss_mib"] < 24 * 1024,
    }
    return out


def main(argv=None):
    """Command line of the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--side", type=int, default=316, help="side of the per-point map (default 316: ~10^5 points)")
    ap.add_argument("--scalar-points", type=int, default=400, help="points timed on the scalar path")
    ap.add_argument("--lanes", type=int, default=1000, help="random lanes checked against 30-digit mpmath (0: skip)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    out = run(args.side, args.scalar_points, args.lanes, args.repeats)
    print(json.dumps(out["targets"], indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
            fh.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
