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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rfq_theory.activations import get_activation
from rfq_theory.axes import VARY_CHOICES
from rfq_theory.checks import InputError, check_scalar
from rfq_theory.model import DeepRF
from rfq_theory.quantizers import get_quantizer
from rfq_theory.solver import predict
from rfq_theory.sweeps import model_at

from ..runner import Experiment, overall_verdict, run_experiment, status_counts
from .backends import BACKENDS, DEVICES, DTYPES
from .executors import DrawTask
from .records import atomic_write_text, dumps
from .simulate import MonteCarloResult, available_memory, draw_memory_bytes
from .tolerance import ABSOLUTE_FLOOR, C_FINITE_SIZE, MIN_VERDICT_DRAWS, Z_GAUSS, regime_warnings, verdict

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
    "RidgeExperiment",
    "experiment_for",
    "LABELS",
    "LOSSES",
]

VARY = VARY_CHOICES
#: Label models: regression targets (ridge readout) or signs (convex-loss readouts).
LABELS = ("regression", "sign")
#: Readout losses.
LOSSES = ("square", "logistic", "hinge")


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
    loss: str = "square"
    label_type: str = "regression"
    input_spectrum: Any = "identity"  # a spec or an InputSpectrum; an InputSpectrum after construction
    teacher: Any = "flat"  # a spec or a TeacherProfile; a TeacherProfile after construction
    basis: str = "axis"

    @property
    def convex(self) -> bool:
        """Sign labels with a convex-loss readout (:mod:`validation.montecarlo.glm_validate`) instead of ridge."""
        return self.label_type == "sign"

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
        self._check_readout()
        self._check_inputs()
        for g in grid:  # every grid point must give whole, positive sizes
            self.point(g)

    def _check_inputs(self) -> None:
        from rfq_theory.input_spectrum import input_spectrum, teacher_profile

        from .inputs import check_basis

        s = object.__setattr__
        s(self, "input_spectrum", input_spectrum(self.input_spectrum))
        s(self, "teacher", teacher_profile(self.teacher))
        s(self, "basis", check_basis(self.basis))
        if self.convex and self.input_spectrum.kind == "values" and not self.input_spectrum.spec.startswith("file:"):
            raise InputError("convex-loss validation needs the input spectrum as text (a family or file:PATH)")
        if self.teacher.kind == "values" and not self.teacher.spec.startswith("file:") and self.convex:
            raise InputError("convex-loss validation needs the teacher as text (flat, power:b or file:PATH)")
        if self.structured:
            self.model(self.variants[0])  # checks the spectrum against d (file length, spikes, Var g > 0)
            if self.backend != "numpy":
                raise InputError(f"structured inputs are simulated on the numpy backend, got backend {self.backend!r}")

    @property
    def structured(self) -> bool:
        """The input covariance is not the identity (``x ~ N(0, Sigma)``, :mod:`validation.montecarlo.inputs`)."""
        return not self.input_spectrum.is_identity

    def input_settings(self) -> dict:
        """``input_spectrum``, ``teacher`` and ``basis`` by their texts, each only when not the default."""
        out = {}
        if self.input_spectrum.spec != "identity":
            out["input_spectrum"] = self.input_spectrum.spec
        if self.teacher.spec != "flat":
            out["teacher"] = self.teacher.spec
        if self.basis != "axis":
            out["basis"] = self.basis
        return out

    def _check_readout(self) -> None:
        if self.label_type not in LABELS:
            raise InputError(f"labels must be one of {', '.join(LABELS)}, got {self.label_type!r}")
        if self.loss not in LOSSES:
            raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not self.convex:
            if self.loss != "square":
                raise InputError(f"the {self.loss} loss needs sign labels (--labels sign), got labels regression")
            return
        if spec_label(self.target) != "linear":
            raise InputError(f"sign labels use the linear teacher; target must be linear, got {self.target!r}")
        if self.backend != "numpy":
            raise InputError(f"sign-label validation runs on the numpy backend, got backend {self.backend!r}")
        ridges = self.grid if self.vary == "ridge" else (self.ridge,)
        if min(ridges) <= 0:
            what = "ridge grid values" if self.vary == "ridge" else f"ridge (got {self.ridge:g})"
            raise InputError(f"{what} must be > 0 for sign labels with the {self.loss} loss")

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
        """``(widths, samples, ridge)`` at grid value ``value`` (whole sizes; the rule of :data:`validation.options.AXES`)."""
        from ..options import AXES

        ratio = AXES[self.vary].scale == "ratio"
        axis_value = max(1, int(round(value * self.input_dim))) if ratio else value
        m, n, lam = model_at(self._shape(), self.vary, axis_value, self.samples, self.ridge)
        widths = tuple(max(1, int(round(float(k)))) for k in m.widths)
        return widths, int(n), float(lam)

    def model(self, variant, widths=None) -> DeepRF:
        """The model with quantizer ``variant`` (a label or a spec) on every layer."""
        spec = self.variant_spec(variant) if isinstance(variant, str) and variant in self.labels else variant
        return DeepRF(self.input_dim, widths or self.widths, self.activations, spec, self.input_spectrum, self.teacher)

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
            # the readout enters the fingerprint only when it is not the ridge default (old stores stay valid)
            **({"loss": self.loss, "labels": self.label_type} if self.convex else {}),
            # so do the input spectrum, the teacher and the basis
            **self.input_settings(),
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
    readout = f", {config.loss} loss on sign labels" if config.convex else f", target {spec_label(config.target)}"
    inputs = ""
    if config.structured:
        inputs = f", input spectrum {config.input_spectrum.spec}, teacher {config.teacher.spec}, {config.basis} basis"
    return (
        f"d = {config.input_dim}, widths {', '.join(map(str, config.widths))}, activations {acts}{fixed}"
        f"{ridge}, noise {config.noise:g}{readout}{inputs}, {config.trials} draws per point"
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


class RidgeExperiment(Experiment):
    """Ridge readouts: theory, finite-size route and Monte Carlo per (variant, grid value) row."""

    name = "validate"

    def __init__(self, config: ValidationConfig):
        self.config = config
        self.trials = config.trials
        extra = list(config.input_settings())
        if extra:  # the input columns follow "target" (only when not the defaults: older tables keep their columns)
            at = self.csv_columns.index("target") + 1
            self.csv_columns = self.csv_columns[:at] + extra + self.csv_columns[at:]
        self._theory: dict = {}
        self._spectra: dict = {}
        self._items = {row_key(label, g): (label, g) for label in config.labels for g in config.grid}

    def settings(self) -> dict:
        return self.config.as_dict()

    def draw_settings(self) -> dict:
        return self.config.draw_settings()

    def row_keys(self) -> list[str]:
        return list(self._items)

    def check_memory(self, workers: int, local_draws: bool) -> None:
        check_memory(self.config, workers, local_draws)

    def theory(self, key: str):
        """The theory prediction of row ``key`` (cached)."""
        if key not in self._theory:
            c = self.config
            label, g = self._items[key]
            widths, n, lam = c.point(g)
            self._theory[key] = predict(c.model(label, widths), n, lam, c.noise, c.target)
        return self._theory[key]

    def prepare(self, keys: list[str]) -> None:
        for key in keys:
            self.theory(key)

    def task(self, key: str, trial: int) -> DrawTask:
        c = self.config
        label, g = self._items[key]
        widths, n, lam = c.point(g)
        return DrawTask(
            key,
            trial,
            c.model(label, widths),
            n,
            lam,
            c.noise,
            c.target,
            c.seed,
            c.test_samples,
            c.backend,
            c.device,
            c.dtype,
            basis=c.basis,
        )

    def finite_size(self, label: str, widths: tuple[int, ...]):
        """The finite-size spectrum of draw ``(seed, 0)`` of variant ``label`` at ``widths`` (cached)."""
        from .finite_size import finite_size_spectrum

        c = self.config
        if (label, widths) not in self._spectra:
            self._spectra[(label, widths)] = finite_size_spectrum(c.model(label, widths), c.seed, 0, basis=c.basis)
        return self._spectra[(label, widths)]

    def row_base(self, key: str) -> dict:
        """The fields every row of ``key`` has: variant, grid value, sizes and data settings."""
        c = self.config
        label, value = self._items[key]
        widths, n, lam = c.point(value)
        return {
            "key": key,
            "variant": label,
            "vary": c.vary,
            "value": value,
            "x": c.x_of(value),
            "input_dim": c.input_dim,
            "widths": list(widths),
            "samples": n,
            "ridge": lam,
            "noise": c.noise,
            "target": spec_label(c.target),
            **c.input_settings(),
        }

    def summarize_row(self, key: str, draws: dict[int, dict]) -> dict:
        """Theory, finite-size route, Monte Carlo and verdict of one row."""
        c = self.config
        base = self.row_base(key)
        label, widths, n, lam = base["variant"], tuple(base["widths"]), base["samples"], base["ridge"]
        theory = self.theory(key)
        fs = self.finite_size(label, widths).predict(n, lam, c.noise, c.target)
        trials = sorted(draws)[: c.trials]
        mc = MonteCarloResult(
            tuple(draws[t]["test_error"] for t in trials),
            tuple(draws[t]["train_error"] for t in trials),
            n,
            lam,
            c.noise,
            c.test_samples,
            c.seed,
            c.backend,
        )
        sizes = (c.input_dim,) + widths + (n,)
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
            **base,
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
            "warnings": regime_warnings(c.input_dim, widths, n),
        }

    def report(self, rows: list[dict], fp: str) -> dict:
        return summarize(self.config, rows, fp)

    def curves(self) -> dict:
        """Dense theory curves of the figure."""
        return theory_curves(self.config)

    def write_outputs(self, store, rows: list[dict], report: dict, figure: bool) -> None:
        if figure and rows:
            from .plotting import plot_comparison

            path = store.dir / "figure.png"
            plot_comparison(rows, self.curves(), self.config.vary, path, figure_title(self.config, report))
            report["files"]["figure"] = str(path)

    def format(self, report: dict) -> str:
        return format_table(report)


def experiment_for(config: ValidationConfig) -> Experiment:
    """The experiment of ``config``: ridge readouts, or convex losses for sign labels."""
    if config.convex:
        from .glm_validate import ConvexExperiment

        return ConvexExperiment(config)
    return RidgeExperiment(config)


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

    The experiment is :func:`experiment_for` ``config``; the run is
    :func:`validation.runner.run_experiment` (see there for ``out``,
    ``resume``, ``executor``/``client``, ``workers``, ``scheduler``,
    ``on_draw`` and ``log``).  Files in ``out``: ``results.jsonl``,
    ``results.csv``, ``report.json`` and ``figure.png``.
    """
    return run_experiment(
        experiment_for(config),
        out,
        resume,
        progress,
        figure,
        executor=executor,
        client=client,
        workers=workers,
        scheduler=scheduler,
        on_draw=on_draw,
        log=log,
    )


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
    counts = status_counts(rows)
    expected = len(config.variants) * len(config.grid)
    zs = [abs(r["z"]) for r in rows if r.get("z") is not None and math.isfinite(r["z"])]
    warnings = sorted({w for r in rows for w in r["warnings"]})
    if config.trials < MIN_VERDICT_DRAWS:
        warnings.append(
            f"{config.trials} draws per row are fewer than the {MIN_VERDICT_DRAWS} a verdict needs: "
            "rows are inconclusive"
        )
    complete = len(rows) == expected
    overall = overall_verdict(rows, expected)
    return {
        "config": config.as_dict(),
        "model": describe_model(config),
        "fingerprint": fp,
        "tolerance": {
            "rule": "|MC - theory| <= z_crit * SE + C_FS * |theory| / min(d, k_1..k_L, n) + floor",
            "floor": ABSOLUTE_FLOOR,
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
    wv = max([14, *(len(str(r["variant"])) for r in report["rows"])])
    head = (
        f"{'variant':<{wv}} {vary:>8} {'n':>6} {'theory':>10} {'finite-sz':>10} {'MC mean':>10} {'MC SE':>9} "
        f"{'z':>7} {'status':>12}"
    )
    lines = [f"model: {report['model']}", head, "-" * len(head)]
    for r in report["rows"]:
        lines.append(
            f"{r['variant']:<{wv}} {r['value']:>8.4g} {r['samples']:>6d} {_num(r['theory_test'], '>10.5g')} "
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
    lines.extend(report.get("notes", []))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def config_from_args(args) -> ValidationConfig:
    """Build a :class:`ValidationConfig` from parsed ``rfq validate`` arguments (ridge and convex losses)."""
    from rfq_theory.options import parse_grid

    from ..options import input_fields, model_fields

    labels = getattr(args, "labels", None)
    loss = getattr(args, "loss", "square")
    if labels is None:
        labels = "regression" if loss == "square" else "sign"
    return ValidationConfig(
        **model_fields(args),
        ridge=args.ridge,
        noise=args.noise,
        target=args.target,
        vary=args.vary,
        grid=tuple(parse_grid(args.grid, "grid")),
        test_samples=args.test_samples,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        loss=loss,
        label_type=labels,
        **input_fields(args),
    )


def _build(args) -> Experiment:
    config = config_from_args(args)
    if config.convex:
        from .glm_validate import require_sklearn

        require_sklearn(config.loss)
        if args.scaling:
            raise InputError("--scaling checks ridge readouts only; drop it with --labels sign")
    if config.structured and args.scaling:
        raise InputError("--scaling checks isotropic inputs only; drop it with --input-spectrum")
    return experiment_for(config)


def _scaling(args):
    def after(experiment, report):
        from .scaling import format_scaling, run_scaling

        report["scaling"] = run_scaling(experiment.config, out=args.out, progress=not args.no_progress)
        if report["scaling"]["verdict"] != "pass" and report["summary"]["verdict"] == "pass":
            report["summary"]["verdict"] = "fail"  # the run passes only when the scaling check passes too
        report.setdefault("notes", []).append(format_scaling(report["scaling"]))
        atomic_write_text(Path(args.out, "report.json"), dumps(report, indent=1))

    return after


def run_validate(args) -> int:
    """Entry point of ``rfq validate``: 0 = verdict pass, 1 = not a pass, 2 = usage error, 3 = solver failure."""
    from ..options import run_command

    return run_command(args, _build, "rfq validate", after=_scaling(args) if args.scaling else None)
