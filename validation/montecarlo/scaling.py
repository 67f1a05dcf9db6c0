"""Scaling check: the same model at growing ``d`` with all size ratios fixed.

For each factor ``f`` the sizes are ``d_f = round(f d)``, ``k_f = round(f k)``
and ``n_f = round(f n)`` (``n`` = the configuration's fixed ``samples``), so
the theory value is the same at every ``f``.  Reported per ``d_f``:

- ``|MC - theory|`` per variant with its standard error, and the RMS
  deviation of a single draw from the theory,
  ``sqrt(mean_t (E_t - theory)^2)``, which measures bias and fluctuation
  together and shrinks like ``1/sqrt(d)`` (the test set also grows:
  ``max(200, round(f * test_samples))`` points per draw);
- the paired difference ``(MC_v - MC_ref) - (theory_v - theory_ref)``
  over draws that share ``W``, ``theta`` and the data (``ref`` = ``none``
  when present, else the first variant).  For ``sign`` vs ``none`` the
  theory gap is exactly 0, so this is the one-bit vs full-precision
  Monte Carlo gap; it must be 0 within its error bar and shrink.

Every ``d`` gets the same number of draws, so the error bars shrink with
the per-draw fluctuations.  The RMS of the paired per-draw gap is reported
too (``rms``): it shrinks like ``1/sqrt(d)`` without sampling noise of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rfq_theory.model import DeepRF
from rfq_theory.solver import predict

from .simulate import simulate
from .tolerance import verdict

__all__ = ["run_scaling", "format_scaling", "DEFAULT_FACTORS"]

DEFAULT_FACTORS = (0.125, 0.25, 0.5, 1.0)


def run_scaling(config, factors: Sequence[float] = DEFAULT_FACTORS, out=None, progress: bool = True) -> dict:
    """Run the scaling check for a :class:`validation.montecarlo.compare.ValidationConfig`; returns a dict.

    Writes ``scaling.png`` to ``out`` when given.
    """
    if getattr(config, "structured", False):
        from rfq_theory.checks import InputError

        raise InputError("the scaling check runs isotropic inputs only; the configuration has an input spectrum")
    factors = tuple(float(f) for f in factors)
    if not factors or any(not (0 < f <= 1e3) for f in factors):
        raise ValueError(f"factors must be positive numbers, got {factors!r}")
    ref = "none" if "none" in config.labels else config.labels[0]
    points: list[dict] = []
    diffs: list[dict] = []
    try:
        from tqdm import tqdm

        bar = tqdm(
            total=len(factors) * len(config.labels), desc="scaling", unit="run", disable=None if progress else True
        )
    except ImportError:  # pragma: no cover
        bar = None
    for f in sorted(factors):
        d = max(2, int(round(f * config.input_dim)))
        widths = tuple(max(1, int(round(f * k))) for k in config.widths)
        n = max(2, int(round(f * config.samples)))
        trials = config.trials
        n_test = max(200, int(round(f * config.test_samples)))
        per = {}
        for var in config.labels:
            model = DeepRF(d, widths, config.activations, config.variant_spec(var))
            th = float(predict(model, n, config.ridge, config.noise, config.target).test_error)
            mc = simulate(
                model,
                n,
                config.ridge,
                config.noise,
                config.target,
                trials=trials,
                test_samples=n_test,
                seed=config.seed,
                backend=config.backend,
                device=config.device,
                dtype=config.dtype,
            )
            per[var] = (th, mc)
            status = verdict(mc.test_mean, mc.test_se, th, trials, (d,) + widths + (n,))["status"]
            points.append(
                {
                    "status": status,
                    "variant": var,
                    "factor": f,
                    "input_dim": d,
                    "widths": list(widths),
                    "samples": n,
                    "draws": trials,
                    "theory_test": th,
                    "mc_test": mc.test_mean,
                    "mc_test_se": mc.test_se,
                    "abs_error": abs(mc.test_mean - th),
                    "test_samples": n_test,
                    "rms_draw_deviation": float(np.sqrt(np.mean((np.asarray(mc.test_errors) - th) ** 2))),
                }
            )
            if bar is not None:
                bar.update(1)
        th_ref, mc_ref = per[ref]
        for var in config.labels:
            if var == ref:
                continue
            th, mc = per[var]
            gap = np.asarray(mc.test_errors) - np.asarray(mc_ref.test_errors) - (th - th_ref)
            mean, se = float(gap.mean()), float(gap.std(ddof=1) / math.sqrt(gap.size))
            v = verdict(mean, se, 0.0, trials, (d,) + widths + (n,), scale=max(abs(th), abs(th_ref)))
            diffs.append(
                {
                    "pair": f"{var} - {ref}",
                    "factor": f,
                    "input_dim": d,
                    "mean": mean,
                    "se": se,
                    "rms": float(np.sqrt(np.mean(gap**2))),
                    "z": v["z"],
                    "status": v["status"],
                }
            )
    if bar is not None:
        bar.close()
    dmax = max(p["input_dim"] for p in points)
    top = [p for p in points if p["input_dim"] == dmax]
    statuses = [p["status"] for p in top] + [x["status"] for x in diffs]
    if "fail" in statuses:
        overall = "fail"
    elif "inconclusive" in statuses:
        overall = "inconclusive"
    else:
        overall = "pass"
    result = {
        "factors": list(factors),
        "reference": ref,
        "points": points,
        "differences": diffs,
        "verdict": overall,
        "files": {},
    }
    if out is not None:
        from .plotting import plot_scaling

        path = Path(out) / "scaling.png"
        Path(out).mkdir(parents=True, exist_ok=True)
        plot_scaling(
            points,
            diffs,
            path,
            f"scaling check: ratios fixed, n/d = {config.samples / config.input_dim:g}, ridge = {config.ridge:g}",
        )
        result["files"]["scaling_figure"] = str(path)
    return result


def format_scaling(result: dict) -> str:
    """Plain-text table of a :func:`run_scaling` result."""
    lines = [f"{'d':>6} {'variant':<12} {'theory':>10} {'MC':>10} {'SE':>9} {'|MC-th|':>9} {'RMS draw':>9}"]
    for p in result["points"]:
        lines.append(
            f"{p['input_dim']:>6d} {p['variant']:<12} {p['theory_test']:>10.5g} {p['mc_test']:>10.5g} "
            f"{p['mc_test_se']:>9.3g} {p['abs_error']:>9.3g} {p['rms_draw_deviation']:>9.3g}"
        )
    for x in result["differences"]:
        lines.append(
            f"{x['input_dim']:>6d} paired {x['pair']:<18} (minus theory gap): {x['mean']:+.3e} +- {x['se']:.2e}"
            f"  (RMS per draw {x['rms']:.2e})"
            f"  {x['status']}"
        )
    lines.append(f"scaling verdict: {result['verdict'].upper()}")
    return "\n".join(lines)
