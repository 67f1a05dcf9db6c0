"""Phase diagrams: one quantity over a plane of two axes, solved as arrays.

Axes (the coordinates as given; ``d`` is the model's input dimension):

- ``samples``: the ratio ``n / d``;
- ``width``: the last width ratio ``k_L / d``;
- ``widths``: a factor multiplying every width (depth and the ratios between
  layers kept);
- ``ridge``: ``lambda``;
- ``depth``: the number of random layers ``L``; a depth up to the model's
  uses its first ``L`` layers, a larger one repeats the last layer
  (width, activation and quantizer).

Quantities: ``test_error``, ``train_error``, ``gap`` (test error of the
model's quantizers minus that of its full-precision twin),
``optimal_ridge`` (``lambda*``) and ``optimal_error`` (the test error at
``lambda*``).  Every point is a lane of :mod:`rfq_theory.batch`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .checks import InputError, check_nonnegative, check_positive
from .model import DeepRF
from .readouts import Readout, RidgeReadout
from .results import Diagnostics, result_repr

__all__ = ["PHASE_AXES", "PHASE_QUANTITIES", "AxisRange", "parse_range", "PhaseMap", "phase_map", "model_with_depth"]

PHASE_AXES = ("samples", "width", "widths", "ridge", "depth")
PHASE_QUANTITIES = ("test_error", "train_error", "gap", "optimal_ridge", "optimal_error")
#: the quantities of a convex-loss readout's map (``test_error``: the classification error for sign labels)
CONVEX_QUANTITIES = ("test_error", "train_error", "train_loss", "test_loss", "gap", "optimal_ridge", "optimal_error")
#: most points along one axis, and in one map (memory is about 90 MiB per million points)
MAX_POINTS = 10000
MAX_MAP_POINTS = 10**7
MAX_DEPTH = 64

AXIS_LABELS = {
    "samples": "n / d",
    "width": "k_L / d",
    "widths": "widths factor",
    "ridge": "ridge lambda",
    "depth": "depth L",
}


@dataclass(frozen=True)
class AxisRange:
    """One axis of a map: ``points`` values from ``start`` to ``stop``, linear or log-spaced."""

    name: str
    start: float
    stop: float
    points: int
    log: bool = False

    def __post_init__(self):
        if self.name not in PHASE_AXES:
            raise InputError(f"axis must be one of {', '.join(PHASE_AXES)}, got {self.name!r}")
        if isinstance(self.points, bool) or not isinstance(self.points, (int, np.integer)):
            raise InputError(f"points of axis {self.name} must be an integer, got {self.points!r}")
        if not 1 <= self.points <= MAX_POINTS:
            raise InputError(f"points of axis {self.name} must be between 1 and {MAX_POINTS}, got {self.points}")
        for end in (self.start, self.stop):
            if not isinstance(end, (int, float, np.floating, np.integer)) or not math.isfinite(end):
                raise InputError(f"axis {self.name}: ends must be finite numbers, got {end!r}")
        lo = min(self.start, self.stop)
        if self.log and lo <= 0:
            raise InputError(f"axis {self.name}: a log range needs positive ends, got {self.start!r}:{self.stop!r}")
        if self.name == "ridge" and lo < 0:
            raise InputError(f"axis ridge: ridge must be >= 0, got {lo!r}")
        if self.name in ("samples", "width", "widths") and lo <= 0:
            raise InputError(f"axis {self.name}: values must be > 0, got {lo!r}")
        if self.name == "depth":
            if self.log:
                raise InputError("axis depth: use a linear range of integers, e.g. depth:1:6:6")
            vals = self.values
            if lo < 1 or max(self.start, self.stop) > MAX_DEPTH or not np.all(np.abs(vals - np.round(vals)) < 1e-9):
                raise InputError(
                    f"axis depth: values must be integers between 1 and {MAX_DEPTH}, got {self.start!r}:{self.stop!r}:{self.points}"
                )

    @property
    def values(self) -> np.ndarray:
        """The coordinates (as given: ratios, factor, ridge or depth)."""
        if self.log:
            return np.geomspace(self.start, self.stop, self.points)
        return np.linspace(self.start, self.stop, self.points)

    def __str__(self):
        mid = "log:" if self.log else ""
        return f"{self.name}:{mid}{self.start!r}:{self.stop!r}:{self.points}"


def parse_range(text, option="x") -> AxisRange:
    """Parse ``name:start:stop:points`` (linear) or ``name:log:start:stop:points``.

    ``option`` names the value in the messages (``"x"`` for the argument of
    :func:`phase_map`; the command line passes ``"--x"``).

    >>> parse_range("samples:0.1:4:300").points
    300
    """
    text = str(text).strip()
    usage = f"{option} must be 'name:start:stop:points' or 'name:log:start:stop:points' with name one of {', '.join(PHASE_AXES)}, got {text!r}"
    parts = text.split(":")
    if len(parts) == 5 and parts[1] == "log":
        name, log, rest = parts[0], True, parts[2:]
    elif len(parts) == 4:
        name, log, rest = parts[0], False, parts[1:]
    else:
        raise InputError(usage)
    if name not in PHASE_AXES:
        raise InputError(f"{option}: axis must be one of {', '.join(PHASE_AXES)}, got {name!r}")
    try:
        start, stop = float(rest[0]), float(rest[1])
        points = int(rest[2])
    except ValueError:
        raise InputError(usage) from None
    try:
        return AxisRange(name, start, stop, points, log)
    except InputError as exc:
        raise InputError(f"{option}: {exc}") from None


def _quantities(readout) -> tuple:
    """The quantities a map of ``readout`` offers."""
    return tuple(readout.lane_quantities) + ("gap", "optimal_ridge", "optimal_error")


def model_with_depth(model: DeepRF, depth: int) -> DeepRF:
    """``model`` with ``depth`` layers: its first ``depth``, or the last layer repeated."""
    depth = int(depth)
    if depth < 1:
        raise InputError(f"depth must be >= 1, got {depth}")
    L = model.depth

    def take(seq):
        seq = tuple(seq)
        if len(seq) == 1 and L > 1:
            seq = seq * L
        return seq[:depth] if depth <= L else seq + (seq[-1],) * (depth - L)

    return replace(
        model, widths=take(model.widths), activations=take(model.activations), quantizers=take(model.quantizers)
    )


@dataclass
class PhaseMap:
    """A quantity over a plane: ``values[i, j]`` at ``(x[j], y[i])``.

    Attributes
    ----------
    x, y:
        Coordinates as given (ratios ``n/d``, ``k_L/d``, a widths factor, a
        ridge or a depth); ``x_axis``/``y_axis`` the :class:`AxisRange`.
    quantity:
        One of :data:`PHASE_QUANTITIES`; ``values`` has shape ``(len(y), len(x))``,
        ``inf`` at the ridgeless interpolation threshold, ``NaN`` where a lane
        did not converge.
    threshold:
        ``n / rank(Omega_L)`` per point: the interpolation threshold is the
        level-1 curve of this array.
    n_failed, n_fallback:
        Points that did not converge (NaN) and points re-solved with mpmath.
    settings:
        The fixed inputs (model, samples, ridge, noise, target).
    """

    x: np.ndarray
    y: np.ndarray
    x_axis: AxisRange
    y_axis: AxisRange
    quantity: str
    values: np.ndarray
    threshold: np.ndarray
    n_failed: int = 0
    n_fallback: int = 0
    messages: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    _headline = ("quantity", "x_axis", "y_axis", "x", "y", "values", "threshold", "n_failed", "n_fallback")
    __repr__ = result_repr

    @property
    def shape(self):
        """``(len(y), len(x))``."""
        return self.values.shape

    @property
    def diagnostics(self) -> Diagnostics:
        """The map's :class:`~rfq_theory.results.Diagnostics` (failed when any point did not converge)."""
        return Diagnostics.of_lanes(self.n_failed, self.n_fallback, self.messages)

    def save_npz(self, path):
        """Write ``x``, ``y``, the quantity (by name), ``threshold`` and the axis names to ``path``."""
        np.savez(
            path,
            x=self.x,
            y=self.y,
            **{self.quantity: self.values},
            threshold=self.threshold,
            x_name=np.array(self.x_axis.name),
            y_name=np.array(self.y_axis.name),
            quantity=np.array(self.quantity),
            n_failed=np.array(self.n_failed),
            n_fallback=np.array(self.n_fallback),
        )

    def save_csv(self, path):
        """Write one row per point: ``x_name, y_name, quantity``."""
        import csv

        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow([self.x_axis.name, self.y_axis.name, self.quantity])
            for i, yv in enumerate(self.y):
                for j, xv in enumerate(self.x):
                    w.writerow([repr(float(xv)), repr(float(yv)), repr(float(self.values[i, j]))])


def _solve_model(readout, model, d, axes_vals, n, lam, noise, target, quantity, fallback, progress):
    """Solve one model over lanes with ``readout``; ``axes_vals``: {axis: broadcastable array}."""
    widths = [float(w) for w in model.sizes(20)[1:]]
    for name, vals in axes_vals.items():
        if name == "samples":
            n = vals * d
        elif name == "width":
            widths = widths[:-1] + [vals * d]
        elif name == "widths":
            widths = [w * vals for w in widths]
        elif name == "ridge":
            lam = vals
    kw = dict(widths=widths, progress=progress, warn=False)
    if isinstance(readout, RidgeReadout):
        kw["fallback"] = fallback
    elif fallback == "none":
        kw["fallback"] = "none"
    if quantity in ("optimal_ridge", "optimal_error"):
        r = readout.optimal_lanes(model, n, noise, target, **kw)
        vals = r.ridge if quantity == "optimal_ridge" else r.test_error
        return vals, np.asarray(n) / r.rank, r
    r = readout.solve_lanes(model, n, lam, noise, target, **kw)
    if quantity == "gap":
        full = readout.solve_lanes(model.with_quantizers("none"), n, lam, noise, target, **kw)
        with np.errstate(invalid="ignore"):
            gap = np.where(r.test_error == full.test_error, 0.0, r.test_error - full.test_error)
        r.converged &= full.converged
        r.fallback |= full.fallback
        r.messages += full.messages
        return gap, np.asarray(n) / r.rank, r
    vals = getattr(r, quantity) if quantity in ("test_error", "train_error") else r.extra[quantity]
    return vals, np.asarray(n) / r.rank, r


def phase_map(
    model: DeepRF,
    x,
    y,
    quantity: str = "test_error",
    samples=None,
    ridge=0.0,
    noise=0.0,
    target="linear",
    *,
    fallback: str = "dd",
    progress: bool | None = None,
    warn: bool = True,
    readout: Readout | None = None,
) -> PhaseMap:
    """Map ``quantity`` over the plane of axes ``x`` and ``y``.

    Parameters
    ----------
    model:
        The :class:`~rfq_theory.model.DeepRF` (its input dimension ``d`` sets
        the scale of the ratio axes).
    x, y:
        :class:`AxisRange` or text ``name:start:stop:points`` /
        ``name:log:start:stop:points`` (see :func:`parse_range`); two
        different axes.
    quantity:
        One of :data:`PHASE_QUANTITIES`.
    samples:
        ``n`` (absolute, like :func:`~rfq_theory.solver.predict`); required
        unless one axis is ``samples``.
    ridge, noise, target:
        Fixed ``lambda``, ``Delta`` and ``f*``.
    fallback, progress:
        As in :func:`rfq_theory.batch.solve_batch` (convex-loss readouts:
        any value but ``"none"`` re-solves the lanes their vectorized
        iteration does not settle with the scalar solver).
    readout:
        A :class:`~rfq_theory.readouts.Readout` (default: the ridge
        readout); :class:`~rfq_theory.readouts.ConvexLossReadout` maps the
        classification error (``test_error``), ``train_error``,
        ``train_loss``, ``test_loss``, the one-bit ``gap`` and the optimal
        ridge of a logistic, hinge or square loss.
    warn:
        Emit a :class:`~rfq_theory.batch.NonConvergenceWarning` counting the
        NaN points.

    Notes
    -----
    Returns a :class:`PhaseMap` whose ``values`` have shape ``(len(y), len(x))``.
    """
    from .batch import NonConvergenceWarning

    if not isinstance(model, DeepRF):
        raise InputError(f"model must be a DeepRF, got {type(model).__name__}")
    xa = x if isinstance(x, AxisRange) else parse_range(x, "x")
    ya = y if isinstance(y, AxisRange) else parse_range(y, "y")
    if xa.name == ya.name:
        raise InputError(f"x and y must be different axes, both are {xa.name!r}")
    if xa.points * ya.points > MAX_MAP_POINTS:
        raise InputError(
            f"a map holds at most {MAX_MAP_POINTS} points, got {xa.points} x {ya.points} = {xa.points * ya.points}"
        )
    readout = RidgeReadout() if readout is None else readout
    if not isinstance(readout, Readout):
        raise InputError(f"readout must be a Readout, got {type(readout).__name__}")
    allowed = _quantities(readout)
    if quantity not in allowed:
        raise InputError(
            f"quantity must be one of {', '.join(allowed)} for the {readout.name} readout, got {quantity!r}"
        )
    names = {xa.name, ya.name}
    if "ridge" in names and quantity in ("optimal_ridge", "optimal_error"):
        raise InputError(f"quantity {quantity} chooses the ridge itself: the ridge cannot be an axis")
    if "samples" not in names:
        if samples is None:
            raise InputError("samples is required unless one axis is samples")
        n = float(check_positive(samples, "samples"))
    else:
        n = 1.0
    lam = float(check_nonnegative(ridge, "ridge"))
    if (
        not readout.zero_ridge
        and lam <= 0
        and "ridge" not in names
        and quantity not in ("optimal_ridge", "optimal_error")
    ):
        raise InputError(f"ridge must be > 0 for the {readout.name} readout, got {ridge!r}")
    if (
        not readout.zero_ridge
        and "ridge" in names
        and min(xa.values.min() if xa.name == "ridge" else np.inf, ya.values.min() if ya.name == "ridge" else np.inf)
        <= 0
    ):
        raise InputError(f"axis ridge: ridge must be > 0 for the {readout.name} readout")
    delta = float(check_nonnegative(noise, "noise"))
    d = float(model.sizes(20)[0])
    xv, yv = xa.values, ya.values
    values = np.empty((yv.size, xv.size))
    threshold = np.empty((yv.size, xv.size))
    n_failed = n_fallback = 0
    messages = []

    def run(m, axes_vals, rows, cols):
        nonlocal n_failed, n_fallback
        # apply "width" before "widths" so that the factor scales the set width
        order = sorted(axes_vals, key=lambda k: {"width": 0, "widths": 1}.get(k, 2))
        v, thr, r = _solve_model(
            readout, m, d, {k: axes_vals[k] for k in order}, n, lam, delta, target, quantity, fallback, progress
        )
        shape = (len(range(yv.size)[rows]), len(range(xv.size)[cols]))
        values[rows, cols] = np.broadcast_to(v, shape)
        threshold[rows, cols] = np.broadcast_to(thr, shape)
        n_failed += int(np.count_nonzero(~np.broadcast_to(r.converged, shape)))
        n_fallback += int(np.count_nonzero(np.broadcast_to(r.fallback, shape)))
        messages.extend(r.messages)

    if xa.name == "depth":
        for j, depth in enumerate(xv):
            run(model_with_depth(model, int(round(depth))), {ya.name: yv[:, None]}, slice(None), slice(j, j + 1))
    elif ya.name == "depth":
        for i, depth in enumerate(yv):
            run(model_with_depth(model, int(round(depth))), {xa.name: xv[None, :]}, slice(i, i + 1), slice(None))
    else:
        run(model, {xa.name: xv[None, :], ya.name: yv[:, None]}, slice(None), slice(None))
    if n_failed and warn:
        warnings.warn(
            f"{n_failed} of {values.size} point(s) did not converge; they are NaN in the map",
            NonConvergenceWarning,
            stacklevel=2,
        )
    settings = dict(model=model, samples=samples, ridge=lam, noise=delta, target=target, readout=readout.name)
    return PhaseMap(xv, yv, xa, ya, quantity, values, threshold, n_failed, n_fallback, messages, settings)


def plot_phase(pm: PhaseMap, path, title: str | None = None):
    """Draw :func:`phase_figure` to the image file ``path``."""
    import matplotlib.pyplot as plt

    fig = phase_figure(pm, title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def phase_figure(pm: PhaseMap, title: str | None = None):
    """Heatmap of ``pm`` with contour lines and the interpolation threshold ``n = rank(Omega_L)``.

    The colour scale is logarithmic when every finite value is positive and
    they span more than a factor 20; a ``gap`` with both signs uses a
    diverging scale centred at 0.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colors

    v = np.ma.masked_invalid(pm.values)
    finite = pm.values[np.isfinite(pm.values)]
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    norm: colors.Normalize | None = None
    cmap = "viridis"
    levels: Any = 8
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        if lo > 0 and hi / lo > 20:
            top = min(hi, float(np.quantile(finite, 0.99)) * 10)
            vmax = max(top, lo * 1.01)
            norm = colors.LogNorm(vmin=lo, vmax=vmax)
            levels = np.geomspace(lo, vmax, 9)[1:-1]
        elif lo < 0 < hi:
            m = float(np.quantile(np.abs(finite), 0.99)) or max(abs(lo), abs(hi))
            norm, cmap = colors.TwoSlopeNorm(vcenter=0.0, vmin=-m, vmax=m), "RdBu_r"
            levels = np.linspace(-m, m, 9)[1:-1]
        else:
            top = float(np.quantile(finite, 0.98))
            vmax = top if top > lo else hi
            norm = colors.Normalize(vmin=lo, vmax=vmax)
            levels = np.linspace(lo, vmax, 9)[1:-1]
    cm = plt.get_cmap(cmap).with_extremes(bad="0.8")
    X, Y = pm.x, pm.y
    mesh = ax.pcolormesh(X, Y, v, norm=norm, cmap=cm, shading="auto")
    fig.colorbar(mesh, ax=ax, label=pm.quantity.replace("_", " "))
    if finite.size and min(v.shape) > 1:
        try:
            cs = ax.contour(X, Y, v, levels=levels, colors="k", linewidths=0.6, alpha=0.6)
            labels = ax.clabel(cs, fontsize=8, fmt="%.3g", inline=True, inline_spacing=2)
            for text in labels:
                text.set_alpha(1.0)
                text.set_bbox({"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.4})
        except (ValueError, TypeError):
            pass
    thr = np.ma.masked_invalid(pm.threshold)
    if min(thr.shape) > 1 and np.nanmin(pm.threshold) < 1 < np.nanmax(pm.threshold):
        ax.contour(X, Y, thr, levels=[1.0], colors="w", linewidths=1.8, linestyles="--")
        ax.plot([], [], "w--", label="interpolation threshold n = rank")
        ax.legend(loc="upper right", fontsize=7, facecolor="0.5")
    if pm.x_axis.log:
        ax.set_xscale("log")
    if pm.y_axis.log:
        ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS[pm.x_axis.name])
    ax.set_ylabel(AXIS_LABELS[pm.y_axis.name])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
