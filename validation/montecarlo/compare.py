"""Theory vs finite-size route vs Monte Carlo, side by side over a grid.

For each quantizer *variant* (applied to every layer) and each grid value
one row holds

- ``theory``: :func:`rfq_theory.predict` (the proportional limit);
- ``finite_size``: the deterministic-equivalent formulas evaluated on the
  realized draw ``(seed, 0)`` (:mod:`validation.montecarlo.finite_size`;
  one ``eigh`` per variant and width);
- ``mc``: the mean and standard error of ``trials`` simulated draws
  (:func:`validation.montecarlo.simulate.simulate_trial`), with the verdict of
  :func:`validation.montecarlo.tolerance.verdict`.

The grid varies one axis (``vary``), with the meaning of
:func:`rfq_theory.sweeps.model_at`; grid values are multipliers:

- ``samples``: ``n = round(g d)``;
- ``width``: the last width ``k_L = round(g d)``;
- ``widths``: every width ``k_l = round(g k_l)`` (depth and ratios kept);
- ``ridge``: ``lambda = g`` (absolute values).

All variants and grid points use the same draw seeds, so their draws share
``W`` (before quantization), ``theta`` and the data: variant differences are
paired.  The draws run in-process or on an executor / Dask cluster
(:mod:`validation.montecarlo.executors`); each finished draw is written to
``results.jsonl`` at once and a row is summarised when its last draw lands
(:mod:`validation.montecarlo.records`).  At the end ``results.csv``,
``report.json`` and ``figure.png`` are written.  CLI: ``rfq validate``
(:func:`run_validate`).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rfq_theory.activations import get_activation
from rfq_theory.axes import VARY_CHOICES
from rfq_theory.checks import InputError, check_scalar
from rfq_theory.model import DeepRF
from rfq_theory.quantizers import get_quantizer
from rfq_theory.solver import predict
from rfq_theory.sweeps import model_at

from .backends import BACKENDS, DEVICES, DTYPES
from .executors import DrawTask, ExecutionInfo, describe, execute
from .records import ResultStore, atomic_write_text, check_out_dir, dumps, fingerprint, strict_json
from .simulate import MonteCarloResult, available_memory, draw_memory_bytes
from .tolerance import C_FINITE_SIZE, MIN_VERDICT_DRAWS, Z_GAUSS, regime_warnings, verdict

__all__ = [
    "ValidationConfig",
    "run_validation",
    "theory_curves",
    "describe_model",
    "format_table",
    "run_validate",
    "config_from_args",
    "estimate_memory",
    "VARY",
]

VARY = VARY_CHOICES


def spec_label(spec) -> str:
    """Text naming an activation or quantizer spec: the spec string itself, or an object's ``name``."""
    if isinstance(spec, str):
        return spec.strip()
    name = getattr(spec, "name", None)
    return str(name) if name else repr(spec)


def _specs(value, name) -> tuple:
    items = (value,) if isinstance(value, str) or not isinstance(value, (list, tuple)) else tuple(value)
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            if not item.strip():
                raise InputError(f"{name}[{i}] must be a non-empty spec, got {item!r}")
            item = item.strip()
        out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class ValidationConfig:
    """Everything a validation run depends on (validated on construction).

    Activation and quantizer specs (strings such as ``"tanh"``,
    ``"Max(u,0.1*u)"``, ``"expr:sign(g)"``, or Activation/Quantizer objects)
    are kept exactly as given and handed to :class:`rfq_theory.DeepRF`
    unchanged; rows and files name them by :func:`spec_label`.
    ``samples`` defaults to ``input_dim`` (used when ``vary`` is not
    ``samples``); ``grid`` holds multipliers (see the module docstring).
    """

    input_dim: int
    widths: tuple[int, ...]
    activations: tuple = ("tanh",)
    variants: tuple = ("none", "sign", "sign-scaled")
    samples: int | None = None
    ridge: float = 1e-2
    noise: float = 0.1
    target: object = "linear"
    vary: str = "samples"
    grid: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0)
    trials: int = 8
    test_samples: int = 4000
    seed: int = 0
    backend: str = "numpy"
    device: str = "cpu"
    dtype: str = "float64"

    def __post_init__(self):
        s = object.__setattr__
        s(self, "input_dim", check_scalar(self.input_dim, "input_dim", int, min_val=1))
        widths = (self.widths,) if isinstance(self.widths, (int, float, str)) else tuple(self.widths)
        if not widths:
            raise InputError("widths must list at least one layer width")
        s(self, "widths", tuple(check_scalar(k, f"widths[{i}]", int, min_val=1) for i, k in enumerate(widths)))
        acts = _specs(self.activations, "activations")
        if len(acts) == 1:
            acts = acts * len(self.widths)
        if len(acts) != len(self.widths):
            raise InputError(
                f"activations: give one activation for all layers or one per layer "
                f"({len(self.widths)}), got {len(acts)}"
            )
        for a in acts:
            get_activation(a)  # raises ActivationError (a ValueError) with a clear line
        s(self, "activations", acts)
        variants = _specs(self.variants, "quantizers")
        if not variants:
            raise InputError("quantizers: give at least one variant")
        for q in variants:
            get_quantizer(q).check_centered()
        labels = [spec_label(q) for q in variants]
        if len(set(labels)) != len(labels):
            raise InputError(f"quantizers: each variant must appear once, got {', '.join(labels)}")
        s(self, "variants", variants)
        s(
            self,
            "samples",
            self.input_dim if self.samples is None else check_scalar(self.samples, "samples", int, min_val=1),
        )
        s(self, "ridge", float(check_scalar(self.ridge, "ridge", float, min_val=0)))
        s(self, "noise", float(check_scalar(self.noise, "noise", float, min_val=0)))
        target = _specs(self.target, "target")
        if len(target) != 1:
            raise InputError(f"target must be one activation spec, got {self.target!r}")
        get_activation(target[0])
        s(self, "target", target[0])
        if self.vary not in VARY_CHOICES:
            raise InputError(f"vary must be one of {', '.join(VARY_CHOICES)}, got {self.vary!r}")
        grid = (self.grid,) if isinstance(self.grid, (int, float, str)) else tuple(self.grid)
        if not grid:
            raise InputError("grid: give at least one value")
        bounds = "both" if self.vary == "ridge" else "neither"  # ridge may be 0, multipliers may not
        grid = tuple(float(check_scalar(g, "grid", float, min_val=0, include_boundaries=bounds)) for g in grid)
        if len(set(grid)) != len(grid):
            raise InputError(f"grid values must be distinct, got {', '.join(f'{g:g}' for g in grid)}")
        s(self, "grid", grid)
        s(self, "trials", check_scalar(self.trials, "trials", int, min_val=2))
        s(self, "test_samples", check_scalar(self.test_samples, "test_samples", int, min_val=1))
        s(self, "seed", check_scalar(self.seed, "seed", int, min_val=0))
        for name, allowed in (("backend", BACKENDS), ("device", DEVICES), ("dtype", DTYPES)):
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for g in grid:  # every grid point must give whole, positive sizes
            self.point(g)

    # ---------------------------------------------------------------- labels
    @property
    def labels(self) -> tuple[str, ...]:
        """Names of the variants (their spec strings)."""
        return tuple(spec_label(q) for q in self.variants)

    def variant_spec(self, label: str):
        """The quantizer spec of the variant named ``label``."""
        return dict(zip(self.labels, self.variants))[label]

    # ---------------------------------------------------------------- axes
    def _shape(self) -> DeepRF:
        return DeepRF(self.input_dim, self.widths, self.activations, "none")

    def point(self, value: float) -> tuple[tuple[int, ...], int, float]:
        """``(widths, samples, ridge)`` at grid value ``value`` (whole sizes for a simulation)."""
        d = self.input_dim
        axis_value = {"samples": max(1, int(round(value * d))), "width": max(1, int(round(value * d)))}.get(
            self.vary, value
        )
        m, n, lam = model_at(self._shape(), self.vary, axis_value, self.samples, self.ridge)
        widths = tuple(max(1, int(round(float(k)))) for k in m.widths)
        return widths, int(n), float(lam)

    def model(self, variant, widths=None) -> DeepRF:
        """The model with quantizer ``variant`` (a label or a spec) on every layer."""
        spec = self.variant_spec(variant) if isinstance(variant, str) and variant in self.labels else variant
        return DeepRF(self.input_dim, widths or self.widths, self.activations, spec)

    def x_of(self, value: float) -> float:
        """Plot abscissa of a grid value: ``n/d`` (samples), ``k_L/d`` (width), else the value."""
        widths, n, _ = self.point(value)
        if self.vary == "samples":
            return n / self.input_dim
        if self.vary == "width":
            return widths[-1] / self.input_dim
        return value

    def as_dict(self) -> dict:
        """JSON-ready settings (specs by their labels)."""
        return {
            "input_dim": self.input_dim,
            "widths": list(self.widths),
            "activations": [spec_label(a) for a in self.activations],
            "variants": list(self.labels),
            "samples": self.samples,
            "ridge": self.ridge,
            "noise": self.noise,
            "target": spec_label(self.target),
            "vary": self.vary,
            "grid": list(self.grid),
            "trials": self.trials,
            "test_samples": self.test_samples,
            "seed": self.seed,
            "backend": self.backend,
            "device": self.device,
            "dtype": self.dtype,
        }

    def draw_settings(self) -> dict:
        """The settings that determine a draw's numbers (its fingerprint): not trials, grid or variants."""
        d = self.as_dict()
        for k in ("trials", "grid", "variants"):
            d.pop(k)
        return d


def row_key(label: str, value: float) -> str:
    """Key of the row of variant ``label`` at grid value ``value``."""
    return f"{label}|{value!r}"


def describe_model(config: ValidationConfig) -> str:
    """One line naming the model and the run (for titles and terminal output)."""
    acts = ", ".join(spec_label(a) for a in config.activations)
    fixed = {
        "samples": "",
        "width": f", n = {config.samples}",
        "widths": f", n = {config.samples}",
        "ridge": f", n = {config.samples}",
    }[config.vary]
    ridge = "" if config.vary == "ridge" else f", ridge {config.ridge:g}"
    return (
        f"d = {config.input_dim}, widths {', '.join(map(str, config.widths))}, activations {acts}{fixed}"
        f"{ridge}, noise {config.noise:g}, target {spec_label(config.target)}, {config.trials} draws per point"
    )


def theory_curves(
    config: ValidationConfig, points: int = 120, lo: float | None = None, hi: float | None = None
) -> dict[str, dict]:
    """Dense theory test/train curves per variant (for figures), abscissa as in :meth:`ValidationConfig.x_of`.

    The range defaults to the grid's (slightly widened); ``lo``/``hi`` set it
    in grid units.  The axis is applied with :func:`rfq_theory.sweeps.model_at`.
    """
    g_lo, g_hi = min(config.grid), max(config.grid)
    if config.vary == "ridge":
        a = lo if lo is not None else (g_lo if g_lo > 0 else (g_hi * 1e-4 if g_hi > 0 else 1e-6))
        b = hi if hi is not None else max(g_hi, a * 10)
        xs = np.geomspace(a, b, points)
    else:
        xs = np.linspace(lo if lo is not None else g_lo * 0.9, hi if hi is not None else g_hi * 1.05, points)
    out = {}
    d = config.input_dim
    for label in config.labels:
        base = config.model(label)
        test, train = [], []
        for g in xs:
            g = float(g)
            value = g * d if config.vary in ("samples", "width") else g
            m, n, lam = model_at(base, config.vary, value, config.samples, config.ridge)
            p = predict(m, n, lam, config.noise, config.target)
            test.append(float(p.test_error))
            train.append(float(p.train_error))
        out[label] = {"x": [float(g) for g in xs], "test": test, "train": train}
    return out


def _finite_size_bytes(sizes: Sequence[int]) -> int:
    d, ks = sizes[0], sizes[1:]
    return 8 * (2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) + 4 * max(ks) ** 2 + ks[-1] * d)


def estimate_memory(config: ValidationConfig, workers: int = 1, local_draws: bool = True) -> int:
    """Estimated peak memory (bytes) of a run on this machine.

    ``workers`` draws at a time (each :func:`~validation.montecarlo.simulate.draw_memory_bytes`
    of the largest grid point) when the draws run here (``local_draws``),
    plus the finite-size route in the driver.
    """
    draw, fs = 0, 0
    itemsize = 4 if config.dtype == "float32" else 8
    for g in config.grid:
        widths, n, _ = config.point(g)
        sizes = (config.input_dim,) + widths
        draw = max(draw, draw_memory_bytes(sizes, n, config.test_samples, itemsize=itemsize))
        fs = max(fs, _finite_size_bytes(sizes))
    return (workers * draw if local_draws else 0) + fs


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.1f} {unit}" if unit != "B" else f"{int(b)} B"
        b /= 1024
    return f"{b:.1f} PiB"  # pragma: no cover


def check_memory(config: ValidationConfig, workers: int = 1, local_draws: bool = True) -> int:
    """Refuse (InputError, one line) a run whose :func:`estimate_memory` exceeds the available memory."""
    need = estimate_memory(config, workers, local_draws)
    avail = available_memory()
    if avail is not None and need > avail:
        at = f" ({workers} draws at a time)" if workers > 1 and local_draws else ""
        raise InputError(
            f"this run needs about {_fmt_bytes(need)} of memory{at} but {_fmt_bytes(avail)} is "
            "available; reduce --input-dim, --widths, --grid, --test-samples or --workers"
        )
    return need


def _row(
    config: ValidationConfig, label: str, value: float, draws: dict[int, dict], spectra: dict, theory_cache: dict
) -> dict:
    """Summarise the finished draws of one row (theory, finite-size route, Monte Carlo, verdict)."""
    from .finite_size import finite_size_spectrum

    widths, n, lam = config.point(value)
    model = config.model(label, widths)
    key = row_key(label, value)
    theory = theory_cache[key] if key in theory_cache else predict(model, n, lam, config.noise, config.target)
    skey = (label, widths)
    if skey not in spectra:
        spectra[skey] = finite_size_spectrum(model, config.seed, 0)
    fs = spectra[skey].predict(n, lam, config.noise, config.target)
    trials = sorted(draws)[: config.trials]
    mc = MonteCarloResult(
        tuple(draws[t]["test_error"] for t in trials),
        tuple(draws[t]["train_error"] for t in trials),
        n,
        lam,
        config.noise,
        config.test_samples,
        config.seed,
        config.backend,
    )
    sizes = (config.input_dim,) + widths + (n,)
    v = verdict(mc.test_mean, mc.test_se, float(theory.test_error), mc.draws, sizes)
    nonfinite = {
        name: ("inf" if x > 0 else "-inf") if math.isinf(x) else "nan"
        for name, x in (
            ("theory_test", float(theory.test_error)),
            ("theory_train", float(theory.train_error)),
            ("finite_size_test", fs.test_error),
            ("finite_size_train", fs.train_error),
            ("z", v["z"]),
        )
        if not math.isfinite(x)
    }
    return {
        "key": key,
        "variant": label,
        "vary": config.vary,
        "value": value,
        "x": config.x_of(value),
        "input_dim": config.input_dim,
        "widths": list(widths),
        "samples": n,
        "ridge": lam,
        "noise": config.noise,
        "target": spec_label(config.target),
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
        "mc_seconds": float(sum(draws[t].get("seconds") or 0.0 for t in trials)),
        **v,
        "nonfinite": nonfinite,
        "warnings": regime_warnings(config.input_dim, widths, n),
    }


def _progress(total, initial, enabled):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="validate", unit="draw", file=sys.stderr)


def _executor_for(workers, scheduler, executor, log):
    """``(executor, cleanup)``: the given executor, a client of ``scheduler`` or an embedded LocalCluster."""
    if executor is not None:
        return executor, lambda: None
    if scheduler is not None:
        from .executors import connect

        client = connect(scheduler)
        return client, client.close
    if workers > 1:
        from .executors import local_cluster

        client, cluster = local_cluster(workers)

        def close():
            try:
                client.close()
            finally:
                cluster.close()

        return client, close
    return None, lambda: None


def run_validation(
    config: ValidationConfig,
    out=None,
    resume: bool = False,
    progress: bool = True,
    figure: bool = True,
    *,
    executor=None,
    client=None,
    workers: int = 1,
    scheduler: str | None = None,
    on_draw: Callable[[dict], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run every draw of every (variant, grid value) row and return the report dict.

    Parameters
    ----------
    out:
        Folder for ``results.jsonl``, ``results.csv``, ``report.json`` and
        ``figure.png`` (``None``: nothing written).  Each finished draw is
        appended to ``results.jsonl`` at once.
    resume:
        Reuse the draws and rows of this configuration already in ``out``.
    executor, client:
        Where the draws run: a ``distributed.Client`` or any
        :class:`concurrent.futures.Executor` (``client`` is an alias).
    workers, scheduler:
        Without an executor: ``workers > 1`` starts an embedded Dask
        ``LocalCluster`` of that many single-threaded processes;
        ``scheduler`` connects to an existing Dask scheduler.  The default
        runs the draws in this process (no Dask needed).
    on_draw:
        Called in the driver with each finished draw's record after it is
        stored (an exception raised there stops the run; what is stored stays).
    log:
        Called with one-line notices (the dashboard address).
    """
    start = time.perf_counter()
    if executor is not None and client is not None:
        raise InputError("give executor or client, not both")
    executor = executor if executor is not None else client
    workers = check_scalar(workers, "workers", int, min_val=1)
    info = (
        describe(executor)
        if executor is not None
        else ExecutionInfo("dask" if (scheduler or workers > 1) else "in-process", workers)
    )
    local_draws = scheduler is None and (executor is None or info.kind != "dask")
    check_memory(config, workers if executor is None else max(1, info.workers), local_draws)
    fp = fingerprint(config.as_dict())
    draw_fp = fingerprint(config.draw_settings())
    store = ResultStore(out, fp, draw_fp, resume) if out is not None else None
    cleanup = lambda: None  # noqa: E731
    try:
        items = [(label, g, row_key(label, g)) for label in config.labels for g in config.grid]
        by_key = {key: (label, g) for label, g, key in items}
        rows: dict[str, dict] = {}
        draws: dict[str, dict[int, dict]] = {key: {} for _, _, key in items}
        if store is not None:
            rows = {k: r for k, r in store.rows.items() if k in by_key}
            for (key, t), rec in store.draws.items():
                if key in draws and t < config.trials:
                    draws[key][t] = rec
        for key in rows:  # a summarised row needs no draws
            draws[key] = {
                t: {"test_error": a, "train_error": b}
                for t, (a, b) in enumerate(zip(rows[key]["mc_test_draws"], rows[key]["mc_train_draws"]))
            }
        reused_rows = len(rows)
        spectra: dict = {}
        theory_cache: dict = {}

        def finish_row(key):
            label, g = by_key[key]
            row = _row(config, label, g, draws[key], spectra, theory_cache)
            if store is not None:
                row = store.add_row(row)
            rows[key] = row
            if store is not None:
                store.write_csv(rows[k] for _, _, k in items if k in rows)

        tasks: list[DrawTask] = []
        for label, g, key in items:
            if key in rows:
                continue
            widths, n, lam = config.point(g)
            model = config.model(label, widths)
            theory_cache[key] = predict(model, n, lam, config.noise, config.target)  # fail early, before simulating
            for t in range(config.trials):
                if t not in draws[key]:
                    tasks.append(
                        DrawTask(
                            key,
                            t,
                            model,
                            n,
                            lam,
                            config.noise,
                            config.target,
                            config.seed,
                            config.test_samples,
                            config.backend,
                            config.device,
                            config.dtype,
                            blas_threads=None,
                        )
                    )
        for _label, _g, key in items:  # rows whose draws were all stored before an interruption
            if key not in rows and len(draws[key]) >= config.trials:
                finish_row(key)
        total = config.trials * len(items)
        reused_draws = total - len(tasks)
        ran = {"n": 0}
        if tasks:
            executor, cleanup = _executor_for(workers, scheduler, executor, log)
            info = describe(executor)
            if info.dashboard and log is not None:
                log(f"dask: {info.workers} workers, dashboard at {info.dashboard}")
            bar = _progress(total, reused_draws, progress)

            def on_done(task: DrawTask, result: dict):
                extra = {"seconds": result["seconds"], "host": result.get("host"), "pid": result.get("pid")}
                if store is not None:
                    rec = store.add_draw(task.key, task.trial, result["test_error"], result["train_error"], **extra)
                else:
                    rec = strict_json(
                        {
                            "record": "draw",
                            "key": task.key,
                            "trial": task.trial,
                            "test_error": result["test_error"],
                            "train_error": result["train_error"],
                            **extra,
                        }
                    )
                draws[task.key][task.trial] = rec
                ran["n"] += 1
                bar.update(1)
                if len(draws[task.key]) >= config.trials and task.key not in rows:
                    finish_row(task.key)
                if on_draw is not None:
                    on_draw(rec)

            try:
                execute(tasks, on_done, executor)
            finally:
                bar.close()
        ordered = [rows[key] for _, _, key in items if key in rows]
        report = summarize(config, ordered, fp)
        report["reused_rows"] = reused_rows
        report["execution"] = dict(
            info.as_dict(), draws_run=ran["n"], draws_reused=reused_draws, wall_s=time.perf_counter() - start
        )
        report["elapsed_s"] = time.perf_counter() - start
        if store is not None:
            report["store"] = {
                "damaged_lines": store.damaged,
                "damaged_file": str(store.damaged_path) if store.damaged else None,
                "moved_to": str(store.moved_to) if store.moved_to else None,
            }
            if store.damaged:
                report["warnings"].append(
                    f"{store.damaged} damaged line(s) of results.jsonl set aside in {store.damaged_path.name}"
                )
            if store.moved_to is not None:
                report["warnings"].append(
                    f"an earlier results.jsonl was moved to {store.moved_to.name} (use --resume to continue a run)"
                )
            outdir = store.dir
            store.write_csv(ordered)
            report["files"].update({"jsonl": str(store.jsonl), "csv": str(store.csv)})
            if figure and ordered:
                from .plotting import plot_comparison

                plot_comparison(
                    ordered, theory_curves(config), config.vary, outdir / "figure.png", figure_title(config, report)
                )
                report["files"]["figure"] = str(outdir / "figure.png")
            report["files"]["report"] = str(outdir / "report.json")
            atomic_write_text(outdir / "report.json", dumps(report, indent=1))
        return strict_json(report)
    finally:
        try:
            cleanup()
        finally:
            if store is not None:
                store.close()


def figure_title(config: ValidationConfig, report: dict) -> str:
    """Two-line figure title: the model, then the verdict."""
    s = report["summary"]
    return (
        f"{describe_model(config)}\nverdict: {s['verdict'].upper()}  ({s['pass']} pass, {s['fail']} fail, "
        f"{s['inconclusive']} inconclusive, {s['n/a']} n/a of {s['expected_rows']} rows)"
    )


def summarize(config: ValidationConfig, rows: list[dict], fp: str = "") -> dict:
    """Report dict: configuration, tolerance, rows, summary counts and overall verdict.

    The overall verdict is ``pass`` when every row is there, none fails or
    is inconclusive and at least one passes; ``fail`` when a row fails;
    ``inconclusive`` when rows lack the draws for a verdict; ``incomplete``
    when rows are missing.
    """
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "inconclusive", "n/a")}
    expected = len(config.variants) * len(config.grid)
    zs = [abs(r["z"]) for r in rows if r.get("z") is not None and math.isfinite(r["z"])]
    warnings = sorted({w for r in rows for w in r["warnings"]})
    if config.trials < MIN_VERDICT_DRAWS:
        warnings.append(
            f"{config.trials} draws per row are fewer than the {MIN_VERDICT_DRAWS} a verdict needs: "
            "rows are inconclusive"
        )
    complete = len(rows) == expected
    if not complete:
        overall = "incomplete"
    elif counts["fail"]:
        overall = "fail"
    elif counts["inconclusive"] or not counts["pass"]:
        overall = "inconclusive"
    else:
        overall = "pass"
    return {
        "config": config.as_dict(),
        "model": describe_model(config),
        "fingerprint": fp,
        "tolerance": {
            "rule": "|MC - theory| <= z_crit * SE + C_FS * |theory| / min(d, k_1..k_L, n)",
            "z_gauss": Z_GAUSS,
            "C_FS": C_FINITE_SIZE,
            "z_crit": "Student-t quantile, trials-1 dof, coverage of |Z| <= 3",
            "min_draws": MIN_VERDICT_DRAWS,
        },
        "summary": {
            "rows": len(rows),
            "expected_rows": expected,
            "complete": complete,
            **counts,
            "max_abs_z": max(zs) if zs else None,
            "verdict": overall,
        },
        "warnings": warnings,
        "rows": rows,
        "files": {},
    }


def _num(x, fmt):
    return "-" if x is None else format(x, fmt)


def format_table(report: dict) -> str:
    """Plain-text comparison table, verdict line and execution line."""
    vary = report["config"]["vary"]
    head = (
        f"{'variant':<14} {vary:>8} {'n':>6} {'theory':>10} {'finite-sz':>10} {'MC mean':>10} {'MC SE':>9} "
        f"{'z':>7} {'status':>12}"
    )
    lines = [f"model: {report['model']}", head, "-" * len(head)]
    for r in report["rows"]:
        lines.append(
            f"{r['variant']:<14} {r['value']:>8.4g} {r['samples']:>6d} {_num(r['theory_test'], '>10.5g')} "
            f"{_num(r['finite_size_test'], '>10.5g')} {_num(r['mc_test'], '>10.5g')} {_num(r['mc_test_se'], '>9.3g')} "
            f"{_num(r['z'], '>7.2f')} {r['status']:>12}"
        )
    s = report["summary"]
    lines.append("-" * len(head))
    mz = s["max_abs_z"]
    lines.append(
        f"verdict: {s['verdict'].upper()}  ({s['pass']} pass, {s['fail']} fail, {s['inconclusive']} inconclusive, "
        f"{s['n/a']} n/a of {s['expected_rows']} rows; max |z| = {'-' if mz is None else round(mz, 2)})"
    )
    ex = report.get("execution")
    if ex:
        where = "in this process" if ex["kind"] == "in-process" else f"on {ex['workers']} {ex['kind']} worker(s)"
        lines.append(f"ran {ex['draws_run']} draws {where} ({ex['draws_reused']} reused) in {ex['wall_s']:.1f} s")
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def config_from_args(args) -> ValidationConfig:
    """Build a :class:`ValidationConfig` from parsed ``rfq validate`` arguments."""
    from rfq_theory.cli.common import parse_grid, split_list

    return ValidationConfig(
        input_dim=args.input_dim,
        widths=tuple(split_list(args.widths, "widths")),
        activations=tuple(split_list(args.activations, "activations")),
        variants=tuple(split_list(args.quantizers, "quantizers")),
        samples=args.samples,
        ridge=args.ridge,
        noise=args.noise,
        target=args.target,
        vary=args.vary,
        grid=tuple(parse_grid(args.grid, "grid")),
        trials=args.trials,
        test_samples=args.test_samples,
        seed=args.seed,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
    )


def _err(msg: str) -> int:
    print(f"rfq validate: error: {msg}", file=sys.stderr)
    return 2


def run_validate(args) -> int:
    """Entry point of ``rfq validate``: 0 = all rows pass, 1 = verdict not a pass, 2 = usage error."""
    try:
        config = config_from_args(args)
        workers = check_scalar(getattr(args, "workers", 1), "workers", int, min_val=1)
        scheduler = getattr(args, "scheduler", None)
        if scheduler is not None and workers > 1:
            raise InputError("give --workers or --scheduler, not both")
        if workers > 1 or scheduler is not None:
            from .executors import check_address, require_dask

            require_dask()
            if scheduler is not None:
                check_address(scheduler)
        check_out_dir(args.out)
        report = run_validation(
            config,
            out=args.out,
            resume=args.resume,
            progress=not args.no_progress,
            workers=workers,
            scheduler=scheduler,
            log=lambda m: print(m, file=sys.stderr),
        )
        if args.scaling:
            from .scaling import run_scaling

            report["scaling"] = run_scaling(config, out=args.out, progress=not args.no_progress)
            atomic_write_text(Path(args.out, "report.json"), dumps(report, indent=1))
    except (ValueError, TypeError) as exc:  # InputError, ActivationError, QuantizerError are ValueErrors
        return _err(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        return _err(f"cannot write{where}: {exc.strerror or exc}")
    if args.json:
        print(dumps(report, indent=1))
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
