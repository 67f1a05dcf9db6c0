"""Scaling laws: power-law fits of the theory's error against the sample size or the width.

For a model and a log-spaced grid of one axis ``x`` (the number of samples
``n``, the last width ``k_L``, or a factor multiplying every width), the
test error ``E(x)`` is computed at every grid point with the vectorized
float solver (:func:`rfq_theory.batch.solve_batch`, or the readout's lane
solver for convex losses), together with its limit

    E_inf = lim_{x -> infinity} E(x),

and the excess ``E(x) - E_inf`` is fitted by a power law

    E(x) - E_inf  ~  C x^(-p)

by least squares on the log-log grid: ``log(E - E_inf) = log C - p log x``.

- ``E_inf`` is the theory's error at the far point ``x_far = LIMIT_FACTOR *
  X``, where ``X`` is the largest of the grid's end and the model's other
  sizes in the units of the axis (``d``, the widths, ``n``).  Far beyond
  every other size of the model the error is an
  analytic function of ``1/x``, so the far point misses the limit by about
  ``(E(x_far / 1000) - E(x_far)) / 1000``; ``limit_error`` reports the
  larger, conservative ``|E(x_far / 1000) - E(x_far)|``.  Where the solver
  does not converge at ``x_far`` the next far point down (``x_far / 1000``,
  then ``x_far / 10^6``) is used, with a message.  A number given as
  ``limit`` replaces the far point (``limit=0`` fits ``E`` itself).
- ``exponent`` is ``p``, ``exponent_stderr`` its ordinary least-squares
  standard error ``sqrt(SSR / (m - 2) / Sxx)`` over the ``m`` points fitted
  (``Sxx`` the sum of squared deviations of ``log x``); the residuals are
  not noise but the curvature of ``log(E - E_inf)``, so the standard error
  measures how far the curve is from one straight line on the fitted range.
- ``local_slope`` is ``-d log(E - E_inf) / d log x`` at every grid point
  (second-order finite differences on the log grid), and
  ``slope_min``/``slope_max`` its range over the fitted points: a single
  power law holds where the local slope is flat.

Points whose excess is not positive, or within ``EXCESS_FLOOR`` (relative)
of the limit's rounding, are left out of the fit and carry a NaN local
slope; the result's ``messages`` count them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .checks import InputError
from .model import DeepRF
from .results import Diagnostics, to_jsonable

__all__ = ["scaling_law", "fit_power_law", "ScalingLaw", "PowerLawFit", "SCALING_AXES", "LIMIT_FACTOR"]

#: the axes a scaling law can vary: ``n``, the last width ``k_L``, every width times a factor
SCALING_AXES = ("samples", "width", "widths")
#: the limit ``E_inf`` is the error at ``LIMIT_FACTOR * max(x)``
LIMIT_FACTOR = 1e9
#: the far points ``x_far / LIMIT_CHECK^j`` (j = 2, 1, 0): the largest that converges is ``E_inf``, the
#: next one bounds its distance to the limit (a solver that fails at ``x_far`` falls back to the next)
LIMIT_CHECK = 1e3
LIMIT_LADDER = 3
#: an excess below this fraction of ``|E_inf|`` is float rounding, not signal: left out of the fit
EXCESS_FLOOR = 1e-9
#: default quantizers compared by :func:`scaling_law`
DEFAULT_QUANTIZERS = ("none", "sign", "sign-scaled", "uniform:4")


# --------------------------------------------------------------------------
# the fit
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PowerLawFit:
    """A least-squares fit ``y - limit ~ constant * x^(-exponent)`` on the log-log grid.

    Attributes
    ----------
    exponent, exponent_stderr:
        ``p`` and its ordinary least-squares standard error (NaN with fewer than 3 points).
    constant, constant_stderr:
        ``C`` and its standard error ``C * SE(log C)`` (first order).
    limit:
        The ``E_inf`` subtracted before the fit.
    x, excess, local_slope:
        The grid, ``y - limit`` and ``-d log(y - limit) / d log x`` at every point (NaN where
        the excess is not usable).
    used:
        True at the points entering the fit.
    slope_min, slope_max:
        The range of the local slope over the fitted points.
    points:
        Number of points fitted.
    max_residual:
        Largest ``|log(excess) - fitted line|`` over the fitted points (0 for an exact power law).
    """

    exponent: float
    exponent_stderr: float
    constant: float
    constant_stderr: float
    limit: float
    slope_min: float
    slope_max: float
    points: int
    max_residual: float
    x: np.ndarray = field(repr=False)
    excess: np.ndarray = field(repr=False)
    local_slope: np.ndarray = field(repr=False)
    used: np.ndarray = field(repr=False)

    def predict(self, x) -> np.ndarray:
        """The fitted ``limit + C x^(-p)`` at ``x``."""
        x = np.asarray(x, dtype=float)
        return self.limit + self.constant * x ** (-self.exponent)

    def __repr__(self) -> str:
        return (
            f"PowerLawFit(exponent={self.exponent:.6g} +- {self.exponent_stderr:.2g}, "
            f"constant={self.constant:.6g}, limit={self.limit:.6g}, local slope "
            f"{self.slope_min:.4g}..{self.slope_max:.4g}, points={self.points})"
        )


def _floats(values, name) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be an array of numbers, got {type(values).__name__}") from None
    return arr


def fit_power_law(x, y, limit: float = 0.0, fit_range: tuple[float, float] | None = None) -> PowerLawFit:
    """Fit ``y - limit ~ C x^(-p)`` by least squares on ``(log x, log(y - limit))``.

    Parameters
    ----------
    x:
        Positive grid values (any order; a log-spaced grid weighs every decade alike).
    y:
        The values at ``x`` (NaN and infinite values are left out).
    limit:
        ``E_inf``, subtracted before the fit (0: fit ``y`` itself).
    fit_range:
        ``(low, high)``: fit only the points with ``low <= x <= high`` (the local
        slope is still computed everywhere).

    Returns
    -------
    PowerLawFit
        ``p``, ``C``, their standard errors and the local slope curve.  Points whose excess
        ``y - limit`` is not positive or below ``EXCESS_FLOOR * |limit|`` are left out.

    Raises
    ------
    InputError
        ``x`` and ``y`` of different lengths, ``x`` not positive, a bad ``fit_range``.
    """
    xs, ys = _floats(x, "x"), _floats(y, "y")
    if xs.shape != ys.shape:
        raise InputError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    if not np.all(np.isfinite(xs) & (xs > 0)):
        raise InputError("x must hold finite positive numbers (a scaling law lives on a log grid)")
    try:
        lim = float(limit)
    except (TypeError, ValueError):
        raise InputError(f"limit must be a number, got {limit!r}") from None
    lo, hi = _check_fit_range(fit_range)
    excess = ys - lim
    floor = EXCESS_FLOOR * abs(lim) if math.isfinite(lim) else math.inf
    good = np.isfinite(excess) & (excess > floor)
    logx = np.log(xs)
    logy = np.full(xs.shape, np.nan)
    logy[good] = np.log(excess[good])
    local = _local_slope(logx, logy)
    used = good & (xs >= lo) & (xs <= hi)
    m = int(np.count_nonzero(used))
    nan = math.nan
    p = se = c = c_se = res_max = nan
    if m >= 2:
        X, Y = logx[used], logy[used]
        xm, ym = X.mean(), Y.mean()
        sxx = float(np.sum((X - xm) ** 2))
        if sxx > 0:
            slope = float(np.sum((X - xm) * (Y - ym)) / sxx)
            icpt = float(ym - slope * xm)
            resid = Y - (icpt + slope * X)
            p, c = -slope, math.exp(icpt)
            res_max = float(np.max(np.abs(resid)))
            if m >= 3:
                s2 = float(np.sum(resid**2)) / (m - 2)
                se = math.sqrt(s2 / sxx)
                c_se = c * math.sqrt(s2 * (1.0 / m + xm**2 / sxx))
    slopes = local[used & np.isfinite(local)]
    return PowerLawFit(
        exponent=p,
        exponent_stderr=se,
        constant=c,
        constant_stderr=c_se,
        limit=lim,
        slope_min=float(slopes.min()) if slopes.size else nan,
        slope_max=float(slopes.max()) if slopes.size else nan,
        points=m,
        max_residual=res_max,
        x=xs,
        excess=np.where(np.isfinite(excess), excess, nan),
        local_slope=local,
        used=used,
    )


def _check_fit_range(fit_range) -> tuple[float, float]:
    if fit_range is None:
        return 0.0, math.inf
    try:
        lo, hi = (float(v) for v in fit_range)
    except (TypeError, ValueError):
        raise InputError(f"fit_range must be two numbers (low, high), got {fit_range!r}") from None
    if not (0 <= lo < hi):
        raise InputError(f"fit_range must satisfy 0 <= low < high, got {fit_range!r}")
    return lo, hi


def _local_slope(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """``-d logy / d logx`` at every point, sorted by ``x`` internally (NaN next to unusable points)."""
    out = np.full(logx.shape, np.nan)
    if logx.size < 2:
        return out
    order = np.argsort(logx, kind="stable")
    lx, ly = logx[order], logy[order]
    if np.any(np.diff(lx) <= 0):  # repeated grid values: no derivative
        return out
    with np.errstate(invalid="ignore"):
        g = np.gradient(ly, lx, edge_order=2 if lx.size > 2 else 1)
    out[order] = -g
    return out


# --------------------------------------------------------------------------
# the scaling law of a model
# --------------------------------------------------------------------------


@dataclass
class ScalingLaw:
    """Errors on a log grid and their power-law fits, one row per quantizer.

    Every array has one row per entry of ``quantizers`` (shape ``(Q,)`` or
    ``(Q, N)`` with ``N`` grid points).

    Attributes
    ----------
    vary:
        ``"samples"`` (``n``), ``"width"`` (the last width ``k_L``) or ``"widths"``
        (every width times the grid value).
    values:
        The grid as given (the fit's ``x``).
    applied:
        The value each point was solved at (``n``, ``k_L`` or the factor): ``values``,
        times ``d`` when the grid was given as ratios.
    quantizers:
        The label of each row (its quantizer specs, joined by ``,`` when per layer).
    test_error:
        ``E(x)``; ``inf`` at a ridgeless interpolation threshold, NaN where a lane failed.
    ridge:
        The ridge of each point (the optimal ridge when ``ridge="optimal"``).
    limit, limit_error:
        ``E_inf`` per row and the bound on its distance to the limit (0 for a given limit,
        NaN when only one far point converged).
    excess, local_slope:
        ``E - E_inf`` and ``-d log(E - E_inf) / d log x`` per point.
    exponent, exponent_stderr, constant, constant_stderr:
        The fit ``E - E_inf ~ C x^(-p)`` per row.
    slope_min, slope_max:
        Range of the local slope over the fitted points.
    fit_points:
        Number of points fitted per row.
    fits:
        The :class:`PowerLawFit` of each row.
    settings:
        The model and the fixed values (samples, ridge, noise, target, readout).
    messages:
        Notes (points left out, a far point that has not settled, failures).
    """

    vary: str
    values: np.ndarray
    applied: np.ndarray
    quantizers: tuple
    test_error: np.ndarray
    ridge: np.ndarray
    limit: np.ndarray
    limit_error: np.ndarray
    excess: np.ndarray
    local_slope: np.ndarray
    exponent: np.ndarray
    exponent_stderr: np.ndarray
    constant: np.ndarray
    constant_stderr: np.ndarray
    slope_min: np.ndarray
    slope_max: np.ndarray
    fit_points: np.ndarray
    fits: tuple = field(repr=False)
    settings: dict = field(default_factory=dict, repr=False)
    messages: list = field(default_factory=list)
    n_failed: int = 0
    n_fallback: int = 0

    @property
    def diagnostics(self) -> Diagnostics:
        """Failed when any point did not converge, fallback when any was re-solved at higher precision."""
        return Diagnostics.of_lanes(self.n_failed, self.n_fallback, self.messages)

    def fit(self, quantizer: str) -> PowerLawFit:
        """The :class:`PowerLawFit` of the row labelled ``quantizer``."""
        try:
            return self.fits[self.quantizers.index(quantizer)]
        except ValueError:
            raise KeyError(f"no row {quantizer!r}; rows: {', '.join(self.quantizers)}") from None

    def table(self) -> list[dict[str, Any]]:
        """One dict per quantizer: exponent, its standard error, constant, limit, local slope range."""
        return [
            {
                "quantizers": q,
                "exponent": float(self.exponent[i]),
                "exponent_stderr": float(self.exponent_stderr[i]),
                "constant": float(self.constant[i]),
                "constant_stderr": float(self.constant_stderr[i]),
                "limit": float(self.limit[i]),
                "limit_error": float(self.limit_error[i]),
                "slope_min": float(self.slope_min[i]),
                "slope_max": float(self.slope_max[i]),
                "fit_points": int(self.fit_points[i]),
            }
            for i, q in enumerate(self.quantizers)
        ]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per quantizer and grid point (the curves, as written by ``rfq scaling --csv``)."""
        out = []
        for i, q in enumerate(self.quantizers):
            fit = self.fits[i]
            fitted = fit.predict(self.values) if math.isfinite(fit.exponent) else np.full(self.values.shape, np.nan)
            for j in range(self.values.size):
                out.append(
                    {
                        "quantizers": q,
                        "x": float(self.values[j]),
                        "value": float(self.applied[j]),
                        "test_error": float(self.test_error[i, j]),
                        "ridge": float(self.ridge[i, j]),
                        "limit": float(self.limit[i]),
                        "excess": float(self.excess[i, j]),
                        "local_slope": float(self.local_slope[i, j]),
                        "fitted": float(fitted[j]),
                        "in_fit": bool(fit.used[j]),
                    }
                )
        return out

    def as_dict(self, digits: int = 17) -> dict:
        """JSON-ready dict: the fits per quantizer, the curves and the settings, numbers as strings."""
        curves = {
            q: {
                "test_error": self.test_error[i],
                "ridge": self.ridge[i],
                "excess": self.excess[i],
                "local_slope": self.local_slope[i],
                "in_fit": [bool(u) for u in self.fits[i].used],
            }
            for i, q in enumerate(self.quantizers)
        }
        settings = {
            k: (v if isinstance(v, (str, int, float, list, tuple)) else str(v)) for k, v in self.settings.items()
        }
        return to_jsonable(
            {
                "vary": self.vary,
                "values": self.values,
                "applied": self.applied,
                "fits": self.table(),
                "curves": curves,
                "settings": settings,
                "messages": list(self.messages),
                "diagnostics": self.diagnostics,
            },
            digits,
        )

    def to_pandas(self, what: str = "curves"):
        """A ``pandas.DataFrame``: ``"curves"`` (one row per quantizer and point) or ``"fits"`` (one per quantizer)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("ScalingLaw.to_pandas needs pandas: pip install pandas") from None
        if what not in ("curves", "fits"):
            raise InputError(f"what must be 'curves' or 'fits', got {what!r}")
        return pd.DataFrame(self.rows() if what == "curves" else self.table())

    def __repr__(self) -> str:
        lines = [
            f"ScalingLaw over {self.vary!r}: {self.values.size} points "
            f"{_g(self.values.min())}..{_g(self.values.max())}, E - E_inf ~ C x^-p"
        ]
        width = max(len(q) for q in self.quantizers)
        for i, q in enumerate(self.quantizers):
            lines.append(
                f"  {q:<{width}}  p = {_g(self.exponent[i])} +- {_g(self.exponent_stderr[i], 2)}, "
                f"C = {_g(self.constant[i])}, E_inf = {_g(self.limit[i])}, "
                f"local slope {_g(self.slope_min[i], 4)}..{_g(self.slope_max[i], 4)}"
            )
        d = self.diagnostics
        msg = d.message if len(d.message) <= 90 else d.message[:87] + "..."
        lines.append(f"  diagnostics = {d.status}{': ' + msg if msg else ''}")
        return "\n".join(lines)

    __str__ = __repr__


def _g(x, digits: int = 6) -> str:
    return f"{float(x):.{digits}g}"


def _variant(q) -> tuple:
    """A quantizer entry as a per-layer tuple (a single spec or object applies to every layer)."""
    if isinstance(q, (tuple, list)):
        if not q:
            raise InputError("quantizers: an entry must name at least one quantizer")
        return tuple(q)
    return (q,)


def _label(model: DeepRF) -> str:
    names = list(dict.fromkeys(model.quantizers))
    return names[0] if len(names) == 1 else ",".join(model.quantizers)


def _grid(grid) -> np.ndarray:
    if grid is None:
        raise InputError("grid is required: positive values of the axis (a log-spaced grid, e.g. np.geomspace)")
    g = _floats(grid, "grid")
    if g.size < 3:
        raise InputError(f"grid must hold at least 3 points to fit a power law with an error bar, got {g.size}")
    if not np.all(np.isfinite(g) & (g > 0)):
        raise InputError("grid must hold finite positive numbers")
    if np.unique(g).size != g.size:
        raise InputError("grid values must be distinct")
    return g


def _readout(readout, loss, labels):
    from .readouts import Readout, readout_for

    if readout is not None:
        if loss is not None or labels is not None:
            raise InputError("give either readout or loss/labels, not both")
        if not isinstance(readout, Readout):
            raise InputError(f"readout must be a Readout, got {type(readout).__name__}")
        return readout
    return readout_for(loss, labels)


def scaling_law(
    model: DeepRF,
    vary: str = "samples",
    grid: Sequence[float] | np.ndarray | None = None,
    *,
    samples=None,
    ridge: float | str = 0.0,
    noise: float = 0.0,
    target: str = "linear",
    quantizers: Sequence = DEFAULT_QUANTIZERS,
    ratio: bool = False,
    limit: float | str = "auto",
    fit_range: tuple[float, float] | None = None,
    readout=None,
    loss: str | None = None,
    labels: str | None = None,
    fallback: str = "dd",
) -> ScalingLaw:
    """Theory errors on a log grid of ``vary`` and the fit ``E(x) - E_inf ~ C x^(-p)`` per quantizer.

    Parameters
    ----------
    model:
        A :class:`~rfq_theory.model.DeepRF` (its quantizers are replaced by each entry of ``quantizers``).
    vary:
        ``"samples"`` (``n = x``), ``"width"`` (the last width ``k_L = x``, the others kept) or
        ``"widths"`` (every width times ``x``, the ratios between layers kept).
    grid:
        At least 3 distinct positive values of ``x``, best log-spaced.
    samples:
        ``n`` when the widths vary (required there).
    ridge:
        ``lambda >= 0``, or ``"optimal"``: the error-minimising ridge at every point
        (:func:`rfq_theory.batch.optimal_ridge_batch`).
    noise, target:
        ``Delta`` and ``f*`` as for :func:`rfq_theory.solver.predict`.
    quantizers:
        The variants compared side by side: each entry a quantizer for every layer
        (``"sign"``) or a tuple with one per layer.
    ratio:
        Read the grid of ``samples`` and ``width`` as ratios to ``d`` (``n = x d``), as the
        command line does; the fit is against the grid as given.
    limit:
        ``"auto"`` (the far point ``LIMIT_FACTOR`` times the largest size, see the module docstring) or a
        number used as ``E_inf`` for every row.
    fit_range:
        ``(low, high)`` in grid units: fit only these points (the curves cover the whole grid).
    readout, loss, labels:
        A :class:`~rfq_theory.readouts.Readout`, or the loss and labels of
        :func:`~rfq_theory.readouts.readout_for` (default ridge regression).
    fallback:
        Ill-conditioned lanes, as in :func:`rfq_theory.batch.solve_batch`.

    Returns
    -------
    ScalingLaw
        Errors, limits, excesses, local slopes and fits, one row per quantizer.

    Raises
    ------
    InputError
        A bad axis, grid, ridge, limit, quantizer or readout (one line naming it).
    """
    from .axes import RATIO_AXES

    if not isinstance(model, DeepRF):
        raise InputError(f"model must be a DeepRF, got {type(model).__name__}")
    if vary not in SCALING_AXES:
        raise InputError(
            f"vary must be one of {', '.join(SCALING_AXES)}, got {vary!r}: samples (n = x), "
            "width (last width k_L = x), widths (every width times x)"
        )
    if not isinstance(ratio, bool):
        raise InputError(f"ratio must be True or False, got {ratio!r}")
    values = _grid(grid)
    rd = _readout(readout, loss, labels)
    optimal = isinstance(ridge, str) and ridge.strip().lower() == "optimal"
    if not optimal:
        try:
            lam = float(ridge)
        except (TypeError, ValueError):
            raise InputError(f"ridge must be a number >= 0 or 'optimal', got {ridge!r}") from None
        if not (math.isfinite(lam) and lam >= 0):
            raise InputError(f"ridge must be a finite number >= 0 or 'optimal', got {ridge!r}")
        if lam == 0 and not rd.zero_ridge:
            raise InputError(f"ridge must be > 0 for the {rd.name} readout (or 'optimal')")
    auto = isinstance(limit, str) and limit.strip().lower() == "auto"
    if not auto:
        try:
            fixed_limit = float(limit)
        except (TypeError, ValueError):
            raise InputError(f"limit must be 'auto' or a number, got {limit!r}") from None
        if not math.isfinite(fixed_limit):
            raise InputError(f"limit must be 'auto' or a finite number, got {limit!r}")
    _check_fit_range(fit_range)
    if vary == "samples":
        if samples is not None:
            raise InputError("samples conflicts with vary='samples' (the grid sets n); leave it out")
        n_fixed = None
    else:
        if samples is None:
            raise InputError(f"samples is required with vary={vary!r}")
        n_fixed = float(samples)
        if not (math.isfinite(n_fixed) and n_fixed > 0):
            raise InputError(f"samples must be a finite number > 0, got {samples!r}")
    variants = [_variant(q) for q in quantizers] if not isinstance(quantizers, str) else [(quantizers,)]
    if not variants:
        raise InputError("quantizers must list at least one quantizer")
    d = float(model.sizes(20)[0])
    widths0 = [float(w) for w in model.sizes(20)[1:]]
    applied = values * d if (ratio and vary in RATIO_AXES) else values
    far = LIMIT_FACTOR * _far_scale(vary, float(applied.max()), d, widths0, n_fixed)
    ladder = [far / LIMIT_CHECK**j for j in range(LIMIT_LADDER - 1, -1, -1)]
    xs = np.concatenate([applied, ladder]) if auto else applied
    n_lanes: Any = xs if vary == "samples" else n_fixed
    widths: list[Any] = list(widths0)
    if vary == "width":
        widths[-1] = xs
    elif vary == "widths":
        widths = [w * xs for w in widths0]
    N, Q = values.size, len(variants)
    errors, ridges = np.empty((Q, N)), np.empty((Q, N))
    limits, limit_err = np.empty(Q), np.zeros(Q)
    models = [model.with_quantizers(v) for v in variants]
    labels_out = [_label(m) for m in models]
    if len(set(labels_out)) != len(labels_out):
        raise InputError(f"quantizers must be distinct, got {', '.join(labels_out)}")
    messages: list[str] = []
    fits: list[PowerLawFit] = []
    n_failed = n_fallback = 0
    for i, (m, label) in enumerate(zip(models, labels_out)):
        kw: dict[str, Any] = dict(widths=widths, fallback=fallback, warn=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if optimal:
                res = rd.optimal_lanes(m, n_lanes, noise, target, **kw)
                lam_lanes = np.broadcast_to(res.ridge, xs.shape)
            else:
                res = rd.solve_lanes(m, n_lanes, lam, noise, target, **kw)
                lam_lanes = np.full(xs.shape, lam)
        e = np.broadcast_to(np.asarray(res.test_error, dtype=float), xs.shape)
        errors[i], ridges[i] = e[:N], lam_lanes[:N]
        n_failed += int(np.count_nonzero(~np.broadcast_to(res.converged, xs.shape)[:N]))
        n_fallback += int(np.count_nonzero(np.broadcast_to(res.fallback, xs.shape)[:N]))
        if auto:
            limits[i], limit_err[i], note = _far_limit(e[N:], ladder)
            if note:
                messages.append(f"{label}: {note}")
        else:
            limits[i] = fixed_limit
        fit = fit_power_law(values, errors[i], limits[i], fit_range)
        fits.append(fit)
        messages.extend(_row_notes(label, fit, errors[i], limits[i], limit_err[i], auto))
    if n_failed:
        messages.append(f"{n_failed} point(s) did not converge; they are NaN")
    settings = {
        "model": repr(model.with_quantizers(variants[0])),
        "input_dim": d,
        "widths": widths0,
        "input_spectrum": model.input_spectrum.spec,
        "teacher": model.teacher.spec,
        "activations": list(model.activations),
        "samples": n_fixed if n_fixed is not None else "varied",
        "ridge": "optimal" if optimal else lam,
        "noise": float(noise),
        "target": str(target),
        "readout": rd.name,
        "ratio": ratio,
        "limit": "auto" if auto else fixed_limit,
        "limit_point": far if auto else None,  # in the units of the applied values
        "fit_range": list(fit_range) if fit_range is not None else None,
    }

    def col(name):
        return np.asarray([getattr(f, name) for f in fits], dtype=float)

    return ScalingLaw(
        vary=vary,
        values=values,
        applied=np.asarray(applied, dtype=float),
        quantizers=tuple(labels_out),
        test_error=errors,
        ridge=ridges,
        limit=limits,
        limit_error=limit_err,
        excess=np.stack([f.excess for f in fits]),
        local_slope=np.stack([f.local_slope for f in fits]),
        exponent=col("exponent"),
        exponent_stderr=col("exponent_stderr"),
        constant=col("constant"),
        constant_stderr=col("constant_stderr"),
        slope_min=col("slope_min"),
        slope_max=col("slope_max"),
        fit_points=np.asarray([f.points for f in fits], dtype=int),
        fits=tuple(fits),
        settings=settings,
        messages=messages,
        n_failed=n_failed,
        n_fallback=n_fallback,
    )


def _far_limit(errors, points) -> tuple[float, float, str]:
    """``(E_inf, bound on its distance to the limit, note)`` from the errors at the far points (increasing)."""
    ok = [j for j in range(len(points)) if math.isfinite(errors[j])]
    if not ok:
        return math.nan, math.nan, "the solver did not converge at any far point; no limit"
    top = ok[-1]
    note = (
        "" if top == len(points) - 1 else f"the far point {points[-1]:.3g} did not converge; E_inf at {points[top]:.3g}"
    )
    if top == 0 or top - 1 not in ok:
        return float(errors[top]), math.nan, (note + "; " if note else "") + "no second far point to bound E_inf"
    return float(errors[top]), abs(float(errors[top - 1] - errors[top])), note


def _far_scale(vary: str, x_max: float, d: float, widths: list, n) -> float:
    """The value of the axis beyond which every other size is small: the far point is ``LIMIT_FACTOR`` times it."""
    if vary == "samples":
        return max([x_max, d] + widths)
    if vary == "width":
        return max([x_max, d, n] + widths[:-1])
    return max(x_max, max(d, n) / min(widths))


def _row_notes(label, fit: PowerLawFit, errors, limit, limit_err, auto) -> list[str]:
    """Notes of one row: points left out of the fit, a limit that has not settled, too few points."""
    out = []
    if not math.isfinite(limit):
        return [f"{label}: the limit E_inf is not finite; no fit"]
    left = int(np.count_nonzero(~fit.used & np.isfinite(errors)))
    bad = int(np.count_nonzero(~np.isfinite(errors)))
    if bad:
        out.append(f"{label}: {bad} point(s) with a non-finite error (a failed lane or the interpolation threshold)")
    if left:
        out.append(f"{label}: {left} point(s) outside the fit range or with an excess E - E_inf <= 0 left out")
    if fit.points < 3:
        out.append(f"{label}: only {fit.points} point(s) fitted; no standard error")
    if auto and fit.points:
        smallest = float(np.nanmin(fit.excess[fit.used]))
        if math.isfinite(limit_err) and limit_err > 1e-2 * smallest:
            out.append(
                f"{label}: the far point has not settled (|E(x/1e3) - E(x)| = {limit_err:.3g} there, against "
                f"a smallest excess {smallest:.3g}); the fit near the end of the grid is uncertain"
            )
    return out
