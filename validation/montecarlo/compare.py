"""Theory vs finite-size route vs Monte Carlo, side by side over a grid.

For each quantizer *variant* (applied to every layer) and each grid value
one row holds

- ``theory``: :func:`rfq_theory.predict` (proportional limit, sections 3-4);
- ``finite_size``: section 3 on the realized draw ``(seed, 0)``
  (:mod:`validation.montecarlo.finite_size`; one ``eigh`` per variant and width);
- ``mc``: :func:`validation.montecarlo.simulate.simulate` over ``trials`` draws, with
  the verdict of :mod:`validation.montecarlo.tolerance`.

The grid varies one thing (``vary``):

- ``samples``: ``n = round(g d)`` for each multiplier ``g``;
- ``width``: every width is scaled, ``k_l = round(g k_l)`` (depth and
  width ratios between layers are kept);
- ``ridge``: ``lambda = g`` (absolute values).

All variants use the same seeds, so their draws share ``W`` (before
quantization), ``theta`` and the data: variant differences are paired.
Rows are appended to ``results.jsonl`` as they finish (``resume=True``
skips rows already there); at the end ``results.csv``, ``report.json`` and
``figure.png`` are written.  CLI: ``validation.montecarlo.commands``,
:func:`run_validate` (``rfq validate``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rfq_theory import DeepRF, get_activation, get_quantizer, predict

from .backends import BACKENDS, DEVICES, DTYPES
from .finite_size import finite_size_spectrum
from .records import RowStore, fingerprint
from .simulate import simulate
from .tolerance import C_FINITE_SIZE, Z_GAUSS, regime_warnings, verdict

__all__ = [
    "ValidationConfig",
    "run_validation",
    "theory_curves",
    "format_table",
    "run_validate",
    "config_from_args",
    "VARY",
]

VARY = ("samples", "width", "ridge")


def _pos_int(value, name):
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if not math.isfinite(f) or f != int(f) or f < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(f)


def _nonneg(value, name):
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not math.isfinite(f) or f < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return f


@dataclass(frozen=True)
class ValidationConfig:
    """Everything a validation run depends on (validated on construction).

    ``samples`` defaults to ``input_dim`` (used when ``vary`` is not
    ``samples``); ``grid`` holds multipliers of ``d`` (samples), of the
    widths (width) or ridge values (ridge).
    """

    input_dim: int
    widths: Tuple[int, ...]
    activations: Tuple[str, ...]
    variants: Tuple[str, ...] = ("none", "sign", "sign-scaled")
    samples: Optional[int] = None
    ridge: float = 1e-2
    noise: float = 0.1
    target: str = "linear"
    vary: str = "samples"
    grid: Tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0)
    trials: int = 8
    test_samples: int = 4000
    seed: int = 0
    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"

    def __post_init__(self):
        s = object.__setattr__
        s(self, "input_dim", _pos_int(self.input_dim, "input_dim"))
        widths = (self.widths,) if isinstance(self.widths, (int, float, str)) else tuple(self.widths)
        if not widths:
            raise ValueError("widths must list at least one layer width")
        s(self, "widths", tuple(_pos_int(k, f"widths[{i}]") for i, k in enumerate(widths)))
        acts = (self.activations,) if isinstance(self.activations, str) else tuple(self.activations)
        if len(acts) == 1:
            acts = acts * len(self.widths)
        if len(acts) != len(self.widths):
            raise ValueError(f"activations: need 1 or {len(self.widths)} entries (one per layer), got {len(acts)}")
        s(self, "activations", tuple(get_activation(a).name for a in acts))
        variants = (self.variants,) if isinstance(self.variants, str) else tuple(self.variants)
        if not variants:
            raise ValueError("quantizers: give at least one variant")
        for q in variants:
            get_quantizer(q).check_centered()
        s(self, "variants", tuple(get_quantizer(q).name for q in variants))
        s(self, "samples", self.input_dim if self.samples is None else _pos_int(self.samples, "samples"))
        s(self, "ridge", _nonneg(self.ridge, "ridge"))
        s(self, "noise", _nonneg(self.noise, "noise"))
        s(self, "target", get_activation(self.target).name)
        if self.vary not in VARY:
            raise ValueError(f"vary must be one of {', '.join(VARY)}, got {self.vary!r}")
        grid = tuple(float(g) for g in ((self.grid,) if isinstance(self.grid, (int, float)) else self.grid))
        if not grid:
            raise ValueError("grid: give at least one value")
        for g in grid:
            if not math.isfinite(g) or g < 0 or (g == 0 and self.vary != "ridge"):
                raise ValueError(f"grid values must be finite and > 0 (>= 0 for ridge), got {g!r}")
        s(self, "grid", grid)
        s(self, "trials", _pos_int(self.trials, "trials"))
        if self.trials < 2:
            raise ValueError("trials must be >= 2 (a standard error needs two draws)")
        s(self, "test_samples", _pos_int(self.test_samples, "test_samples"))
        if isinstance(self.seed, bool) or int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        s(self, "seed", int(self.seed))
        for name, allowed in (("backend", BACKENDS), ("device", DEVICES), ("dtype", DTYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

    def point(self, value: float) -> Tuple[Tuple[int, ...], int, float]:
        """``(widths, samples, ridge)`` at grid value ``value``."""
        if self.vary == "samples":
            return self.widths, max(1, int(round(value * self.input_dim))), self.ridge
        if self.vary == "width":
            return tuple(max(1, int(round(value * k))) for k in self.widths), self.samples, self.ridge
        return self.widths, self.samples, value

    def model(self, variant: str, widths=None) -> DeepRF:
        """The model with quantizer ``variant`` on every layer."""
        return DeepRF(self.input_dim, widths or self.widths, self.activations, variant)

    def x_of(self, value: float) -> float:
        """Plot abscissa of a grid value (``n/d`` for samples)."""
        if self.vary == "samples":
            return self.point(value)[1] / self.input_dim
        return value

    def as_dict(self) -> dict:
        return asdict(self)


def theory_curves(config: ValidationConfig, points: int = 120) -> Dict[str, dict]:
    """Dense theory test/train curves per variant over the grid's range (for the figure)."""
    lo, hi = min(config.grid), max(config.grid)
    if config.vary == "ridge":
        lo = lo if lo > 0 else (hi * 1e-4 if hi > 0 else 1e-6)
        xs = np.geomspace(lo, max(hi, lo * 10), points)
    else:
        xs = np.linspace(lo * 0.9, hi * 1.05, points)
    out = {}
    for var in config.variants:
        test, train, xplot = [], [], []
        for g in xs:
            if config.vary == "samples":
                m, n, lam = config.model(var), g * config.input_dim, config.ridge
            elif config.vary == "width":
                m, n, lam = config.model(var, tuple(g * k for k in config.widths)), config.samples, config.ridge
            else:
                m, n, lam = config.model(var), config.samples, g
            p = predict(m, n, lam, config.noise, config.target)
            test.append(float(p.test_error))
            train.append(float(p.train_error))
            xplot.append(float(g))
        out[var] = {"x": xplot, "test": test, "train": train}
    return out


def _row(config: ValidationConfig, variant: str, value: float, spectra: dict) -> dict:
    widths, n, lam = config.point(value)
    model = config.model(variant, widths)
    theory = predict(model, n, lam, config.noise, config.target)
    key = (variant, widths)
    if key not in spectra:
        spectra[key] = finite_size_spectrum(model, config.seed, 0)
    fs = spectra[key].predict(n, lam, config.noise, config.target)
    t0 = time.perf_counter()
    mc = simulate(model, n, lam, config.noise, config.target, trials=config.trials,
                  test_samples=config.test_samples, seed=config.seed, backend=config.backend,
                  device=config.device, dtype=config.dtype)
    sizes = (config.input_dim,) + widths + (n,)
    v = verdict(mc.test_mean, mc.test_se, float(theory.test_error), mc.draws, sizes)
    return {
        "key": f"{variant}|{value!r}",
        "variant": variant,
        "vary": config.vary,
        "value": value,
        "x": config.x_of(value),
        "input_dim": config.input_dim,
        "widths": list(widths),
        "samples": n,
        "ridge": lam,
        "noise": config.noise,
        "target": config.target,
        "theory_test": float(theory.test_error),
        "theory_train": float(theory.train_error),
        "theory_regime": theory.regime,
        "theory_message": theory.message,
        "finite_size_test": fs.test_error,
        "finite_size_train": fs.train_error,
        "mc_test": mc.test_mean,
        "mc_test_se": mc.test_se,
        "mc_train": mc.train_mean,
        "mc_train_se": mc.train_se,
        "draws": mc.draws,
        "mc_test_draws": list(mc.test_errors),
        "mc_train_draws": list(mc.train_errors),
        "mc_seconds": time.perf_counter() - t0,
        **v,
        "warnings": regime_warnings(config.input_dim, widths, n),
    }


def _progress(total, enabled):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, disable=not enabled, desc="validate", unit="row", file=sys.stderr)


def run_validation(config: ValidationConfig, out=None, resume: bool = False, progress: bool = True,
                   figure: bool = True, stop_after: Optional[int] = None) -> dict:
    """Run every (variant, grid value) row and return the report dict.

    ``out``: directory for ``results.jsonl``, ``results.csv``, ``report.json``
    and ``figure.png`` (``None``: nothing written).  ``resume``: reuse rows
    of the same configuration already in ``out/results.jsonl``.
    ``stop_after``: stop after computing that many new rows (tests use it to
    simulate an interruption; the report is then partial).
    """
    start = time.perf_counter()
    cfg = config.as_dict()
    fp = fingerprint(cfg)
    store = RowStore(out, fp, resume) if out is not None else None
    keys = [f"{v}|{g!r}" for v in config.variants for g in config.grid]
    rows: Dict[str, dict] = dict(store.rows) if store else {}
    reused = sum(k in rows for k in keys)
    spectra: dict = {}
    bar = _progress(len(keys), progress)
    if bar is not None:
        bar.update(reused)
    computed = 0
    for var in config.variants:
        for g in config.grid:
            key = f"{var}|{g!r}"
            if key in rows:
                continue
            if stop_after is not None and computed >= stop_after:
                break
            row = _row(config, var, g, spectra)
            rows[key] = row
            if store:
                store.append(row)
            computed += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    ordered = [rows[k] for k in keys if k in rows]
    report = summarize(config, ordered, fp)
    report["reused_rows"] = reused
    report["elapsed_s"] = time.perf_counter() - start
    if out is not None:
        outdir = Path(out)
        if figure and ordered:
            from .plotting import plot_comparison

            title = (f"d={config.input_dim}, widths={list(config.widths)}, {list(config.activations)}, "
                     f"ridge={config.ridge:g}, noise={config.noise:g}, target={config.target}, {config.trials} draws")
            plot_comparison(ordered, theory_curves(config), config.vary, outdir / "figure.png", title)
            report["files"]["figure"] = str(outdir / "figure.png")
        report["files"].update({"jsonl": str(store.jsonl), "csv": str(store.csv), "report": str(outdir / "report.json")})
        (outdir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def summarize(config: ValidationConfig, rows: List[dict], fp: str = "") -> dict:
    """Report dict: configuration, tolerance, rows, summary counts and overall verdict."""
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "n/a")}
    expected = len(config.variants) * len(config.grid)
    zs = [abs(r["z"]) for r in rows if math.isfinite(r.get("z", float("nan")))]
    warnings = sorted({w for r in rows for w in r["warnings"]})
    complete = len(rows) == expected
    ok = complete and counts["fail"] == 0 and counts["pass"] > 0
    return {
        "config": config.as_dict(),
        "fingerprint": fp,
        "tolerance": {
            "rule": "|MC - theory| <= z_crit * SE + C_FS * |theory| / min(d, k_1..k_L, n)",
            "z_gauss": Z_GAUSS,
            "C_FS": C_FINITE_SIZE,
            "z_crit": "Student-t quantile, trials-1 dof, coverage of |Z| <= 3",
        },
        "summary": {
            "rows": len(rows),
            "expected_rows": expected,
            "complete": complete,
            **counts,
            "max_abs_z": max(zs) if zs else None,
            "verdict": "pass" if ok else ("incomplete" if not complete else "fail"),
        },
        "warnings": warnings,
        "rows": rows,
        "files": {},
    }


def format_table(report: dict) -> str:
    """Plain-text comparison table and verdict line."""
    vary = report["config"]["vary"]
    head = f"{'variant':<12} {vary:>8} {'n':>6} {'theory':>10} {'finite-sz':>10} {'MC mean':>10} {'MC SE':>9} {'z':>7} {'status':>6}"
    lines = [head, "-" * len(head)]
    for r in report["rows"]:
        lines.append(
            f"{r['variant']:<12} {r['value']:>8.4g} {r['samples']:>6d} {r['theory_test']:>10.5g} "
            f"{r['finite_size_test']:>10.5g} {r['mc_test']:>10.5g} {r['mc_test_se']:>9.3g} {r['z']:>7.2f} {r['status']:>6}"
        )
    s = report["summary"]
    lines.append("-" * len(head))
    lines.append(
        f"verdict: {s['verdict'].upper()}  ({s['pass']} pass, {s['fail']} fail, {s['n/a']} n/a of "
        f"{s['expected_rows']} rows; max |z| = {s['max_abs_z'] if s['max_abs_z'] is None else round(s['max_abs_z'], 2)})"
    )
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def _csv(text, name, cast=str):
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{name} needs a comma-separated list, got {text!r}")
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise ValueError(f"--{name}: cannot read {text!r} as a list of numbers") from None


def config_from_args(args) -> ValidationConfig:
    """Build a :class:`ValidationConfig` from parsed ``rfq validate`` arguments."""
    return ValidationConfig(
        input_dim=args.input_dim,
        widths=tuple(_csv(args.widths, "widths")),
        activations=tuple(_csv(args.activations, "activations")),
        variants=tuple(_csv(args.quantizers, "quantizers")),
        samples=args.samples,
        ridge=args.ridge,
        noise=args.noise,
        target=args.target,
        vary=args.vary,
        grid=tuple(_csv(args.grid, "grid", float)),
        trials=args.trials,
        test_samples=args.test_samples,
        seed=int(args.seed) if str(args.seed).isdigit() else args.seed,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
    )


def run_validate(args) -> int:
    """Entry point of ``rfq validate``: 0 = all rows pass, 1 = failed verdict, 2 = usage error."""
    try:
        config = config_from_args(args)
        report = run_validation(config, out=args.out, resume=args.resume, progress=not args.no_progress)
        if args.scaling:
            from .scaling import run_scaling

            report["scaling"] = run_scaling(config, out=args.out, progress=not args.no_progress)
            Path(args.out, "report.json").write_text(json.dumps(report, indent=1, default=str))
    except ValueError as exc:  # InputError, ActivationError, QuantizerError are ValueErrors
        print(f"rfq validate: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    else:
        print(format_table(report))
        if args.scaling:
            from .scaling import format_scaling

            print(format_scaling(report["scaling"]))
        print(f"files: {', '.join(report['files'].values())}")
    ok = report["summary"]["verdict"] == "pass"
    if args.scaling:
        ok = ok and report["scaling"]["verdict"] == "pass"
    return 0 if ok else 1
