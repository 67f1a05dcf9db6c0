"""Readouts: one interface for the ridge readout and the convex-loss readouts.

A readout turns the features of a deep random-features model into a
prediction.  Two families share one interface, :class:`Readout`:

- :class:`RidgeReadout`: ridge regression on real labels, the fixed point
  of :func:`rfq_theory.solver.predict` (``E_test``, ``E_train``);
- :class:`ConvexLossReadout`: the minimiser of a convex loss (``square``,
  ``logistic``, ``hinge``) plus ``lambda ||w||^2``, on regression or
  ``+-1`` (``sign``) labels, the saddle point of
  :func:`rfq_theory.glm.predict_glm`.

Everything derived from a prediction is written once over readouts: a
curve over one axis (:func:`curve`), the error-minimising ridge
(:func:`optimal_ridge`), the one-bit comparison (:func:`theorem`) and, in
:mod:`rfq_theory.phase`, maps over two axes (each readout supplies its
batched solver, :meth:`Readout.solve_lanes`).  The historical entry points
(``predict``, ``predict_glm``, ``sweep``, ``glm_sweep``, ``optimal_ridge``,
``one_bit_theorem``, ``glm_theorem``, ``phase_map``) call these.

Every result carries a :class:`~rfq_theory.results.Diagnostics` record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import InputError, check_nonnegative, check_positive
from .model import DeepRF
from .results import Curve, Diagnostics, result_repr

__all__ = [
    "Readout",
    "RidgeReadout",
    "ConvexLossReadout",
    "readout_for",
    "curve",
    "optimal_ridge",
    "theorem",
    "OptimalRidge",
    "TheoremResult",
    "RIDGE_BOUNDS",
    "CONVEX_BOUNDS",
]

#: default search interval of the optimal ridge: ridge readout, convex-loss readouts
RIDGE_BOUNDS = (1e-10, 1e4)
CONVEX_BOUNDS = (1e-6, 1e3)

#: failures of one point that a curve records instead of raising
_POINT_FAILURES = (ArithmeticError, FloatingPointError, OverflowError)


class Readout:
    """The interface of a readout (subclassed by :class:`RidgeReadout` and :class:`ConvexLossReadout`).

    Attributes
    ----------
    name:
        A short label (``"ridge"``, ``"logistic/sign"``, ...).
    quantities:
        The numbers :meth:`predict` reports (attribute names of its result).
    lane_quantities:
        The quantities of :meth:`solve_lanes` (phase maps).
    zero_ridge:
        Whether ``ridge = 0`` is a legal input.
    bounds:
        The default search interval of :func:`optimal_ridge`.
    """

    name: str = "readout"
    quantities: tuple[str, ...] = ()
    lane_quantities: tuple[str, ...] = ()
    zero_ridge: bool = False
    bounds: tuple[float, float] = RIDGE_BOUNDS

    def predict(self, model: DeepRF, samples, ridge, noise=0, target="linear", digits=None, guess=None) -> Any:
        """The prediction at one point (a result with a ``diagnostics`` record)."""
        raise NotImplementedError

    def warm_start(self, result, vary: str):
        """The ``guess`` for the next point of a curve along ``vary`` (``None``: cold start)."""
        return None

    def failed(self, samples, ridge, noise, target, digits, message: str) -> Any:
        """A result of NaNs whose diagnostics say the point failed with ``message``."""
        raise NotImplementedError

    def solve_lanes(self, model: DeepRF, samples, ridge, noise, target="linear", **kw) -> Any:
        """Many points at once (arrays), a :class:`~rfq_theory.batch.BatchResult`."""
        raise NotImplementedError

    def optimal_lanes(self, model: DeepRF, samples, noise, target="linear", **kw) -> Any:
        """The optimal ridge of many points at once, an :class:`~rfq_theory.batch.OptimalRidgeResult`."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class RidgeReadout(Readout):
    """Ridge regression on real labels (:func:`rfq_theory.solver.predict`)."""

    name = "ridge"
    quantities = ("test_error", "train_error", "bias", "noise_part", "df1", "df2")
    lane_quantities = ("test_error", "train_error")
    zero_ridge = True
    bounds = RIDGE_BOUNDS

    def predict(self, model, samples, ridge=0, noise=0, target="linear", digits=None, guess=None):
        from .solver import predict

        return predict(model, samples, ridge, noise, target, digits=digits, guess=guess)

    def warm_start(self, result, vary):
        k0 = getattr(result, "kappa0", None)
        return k0 if k0 is not None and vary not in ("width", "widths") and result.converged else None

    def failed(self, samples, ridge, noise, target, digits, message):
        from .solver import Prediction

        nan = math.nan
        return Prediction(
            *([nan] * 2),
            effective_ridges=(nan,),
            df1=nan,
            df2=nan,
            s=nan,
            s_prime=nan,
            bias=nan,
            noise_part=nan,
            var_y=nan,
            rho=nan,
            samples=float(samples),
            ridge=float(ridge),
            noise=float(noise),
            regime="failed",
            digits=digits,
            message=message,
            converged=False,
        )

    def solve_lanes(self, model, samples, ridge, noise, target="linear", **kw):
        from .batch import solve_batch

        return solve_batch(model, samples, ridge, noise, target, **kw)

    def optimal_lanes(self, model, samples, noise, target="linear", **kw):
        from .batch import optimal_ridge_batch

        return optimal_ridge_batch(model, samples, noise, target, **kw)


class ConvexLossReadout(Readout):
    """The minimiser of ``(1/n) sum loss + lambda ||w||^2`` (:func:`rfq_theory.glm.predict_glm`).

    Parameters
    ----------
    loss:
        ``"logistic"``, ``"hinge"`` or ``"square"``.
    labels:
        ``"sign"`` (``+-1`` labels, every loss) or ``"regression"`` (square loss only).
    """

    quantities = ("test_error", "test_loss", "train_loss", "train_error", "m", "q", "V")
    lane_quantities = ("test_error", "train_error", "train_loss", "test_loss")
    zero_ridge = False
    bounds = CONVEX_BOUNDS

    def __init__(self, loss: str = "logistic", labels: str = "sign"):
        from .glm import LABELS
        from .losses import check_loss

        check_loss(loss)
        if labels not in LABELS:
            raise InputError(f"labels must be one of {', '.join(LABELS)}, got {labels!r}")
        if labels == "regression" and loss != "square":
            raise InputError(f"loss {loss!r} needs labels 'sign' (+-1 labels); regression labels use the square loss")
        self.loss, self.labels = loss, labels
        self.name = f"{loss}/{labels}"

    def __eq__(self, other):
        return isinstance(other, ConvexLossReadout) and (self.loss, self.labels) == (other.loss, other.labels)

    def __hash__(self):
        return hash((self.loss, self.labels))

    def predict(self, model, samples, ridge, noise=0, target="linear", digits=None, guess=None):
        from .glm import predict_glm

        return predict_glm(model, samples, ridge, noise, target, self.labels, self.loss, digits, guess=guess)

    def warm_start(self, result, vary):
        if vary not in ("samples", "ridge") or not result.converged:
            return None
        return (math.log(float(result.kappa0)), float(result.m), float(result.q))

    def failed(self, samples, ridge, noise, target, digits, message):
        from .glm import failed_glm_prediction

        return failed_glm_prediction(samples, ridge, noise, self.loss, self.labels, target, digits, message)

    def solve_lanes(self, model, samples, ridge, noise, target="linear", **kw):
        from .glm_lanes import solve_glm_lanes

        return solve_glm_lanes(model, samples, ridge, noise, target, self.labels, self.loss, **kw)

    def optimal_lanes(self, model, samples, noise, target="linear", **kw):
        from .glm_lanes import optimal_ridge_glm_lanes

        return optimal_ridge_glm_lanes(model, samples, noise, target, self.labels, self.loss, **kw)


def readout_for(loss: str | None = None, labels: str | None = None) -> Readout:
    """The readout of the ``--loss``/``--labels`` options: ridge for square loss on regression labels.

    ``labels`` defaults to ``regression`` for the square loss and ``sign`` otherwise.
    """
    loss = loss or "square"
    if labels is None:
        labels = "regression" if loss == "square" else "sign"
    if loss == "square" and labels == "regression":
        return RidgeReadout()
    return ConvexLossReadout(loss, labels)


# --------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------


def curve(
    readout: Readout,
    model: DeepRF,
    vary: str,
    values: Sequence,
    samples=None,
    ridge=0,
    noise=0,
    target="linear",
    digits: int | None = None,
    progress: bool | None = None,
    ratio: bool = False,
) -> Curve:
    """``readout.predict`` over a grid of one axis, each point warm-started from the previous one.

    The axes are those of :func:`rfq_theory.sweeps.model_at`; ``values``
    are absolute (``n``, ``k_L``, a widths factor, ``lambda``), or with
    ``ratio=True`` ratios to the input dimension ``d`` for ``samples`` and
    ``width`` (``n = g d``, ``k_L = g d``: the meaning of ``rfq curve
    --grid``).  A point whose solve does not converge does not stop the
    curve: it is a result of NaNs whose ``diagnostics.converged`` is False
    and whose ``diagnostics.message`` says why (bad input still raises).
    Returns a :class:`~rfq_theory.results.Curve`.
    """
    from tqdm.auto import tqdm

    from .axes import AXIS_MEANING, RATIO_AXES, VARY_CHOICES
    from .sweeps import model_at

    if vary not in VARY_CHOICES:
        meanings = "; ".join(f"{a} ({AXIS_MEANING[a][1 if ratio else 0]})" for a in VARY_CHOICES)
        raise InputError(f"vary must be one of {', '.join(VARY_CHOICES)}, got {vary!r}: {meanings}")
    if not isinstance(ratio, bool):
        raise InputError(f"ratio must be True or False, got {ratio!r}")
    grid = list(values)
    if not grid:
        raise InputError("values must hold at least one grid point")
    if vary != "samples" and samples is None:
        raise InputError("samples is required unless vary='samples'")
    for i, v in enumerate(grid):
        if vary == "ridge" and readout.zero_ridge:
            check_nonnegative(v, f"values[{i}]")
        else:
            check_positive(v, f"values[{i}]")
    if ratio and vary in RATIO_AXES:
        d = float(model.sizes(20)[0])
        values = [float(g) * d for g in grid]
    else:
        values = grid
    disable = None if progress is None and len(values) > 50 else not progress
    out, guess = [], None
    for value in tqdm(values, desc=f"{readout.name} curve {vary}", disable=disable, leave=False):
        mdl, n, lam = model_at(model, vary, value, samples, ridge)
        exc: Exception | None = None
        try:
            pred = readout.predict(mdl, n, lam, noise, target, digits=digits, guess=guess)
        except _POINT_FAILURES as first:
            exc = first
            if guess is not None:  # a warm start can mislead: try once from scratch
                try:
                    pred = readout.predict(mdl, n, lam, noise, target, digits=digits)
                except _POINT_FAILURES as exc2:
                    exc = exc2
                    pred = None
            else:
                pred = None
            if pred is None:
                pred = readout.failed(n, lam, noise, target, digits, f"{type(exc).__name__}: {exc}")
        guess = readout.warm_start(pred, vary)
        out.append(pred)
    return Curve(vary, [float(g) for g in grid], out, applied=[float(v) for v in values], ratio=ratio)


# --------------------------------------------------------------------------
# the optimal ridge
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimalRidge:
    """Result of :func:`optimal_ridge` (unpacks as ``ridge, prediction``).

    Attributes
    ----------
    ridge:
        ``lambda*`` (``0.0`` when the ridgeless estimator is best).
    prediction:
        The readout's prediction at ``lambda*``.
    at_bound:
        ``None`` for an interior minimum; ``"lower"`` or ``"upper"`` when
        the minimum sits on that end of the search ``bounds``: the true
        optimum then lies at or beyond the bound (the error still decreases
        towards it), so ``ridge`` is that bound, not an optimum.
    bounds:
        The search interval ``(low, high)``.
    message:
        One line describing the result (says so when ``at_bound`` is set).
    function_calls:
        Float-path solves spent by the search.
    converged:
        Whether the bounded Brent search met its tolerance.
    polished:
        True when ``lambda*`` was refined at ``digits`` (a root of the
        derivative of the test error in ``log lambda``).
    """

    ridge: float
    prediction: Any
    at_bound: str | None
    bounds: tuple
    message: str
    function_calls: int
    converged: bool
    polished: bool = False

    _headline = ("ridge", "prediction", "at_bound", "bounds", "message", "function_calls", "polished")
    __repr__ = result_repr

    def __iter__(self):
        return iter((self.ridge, self.prediction))

    def __getitem__(self, index):
        """``result[0]`` is ``ridge``, ``result[1]`` the prediction (tuple compatibility)."""
        return (self.ridge, self.prediction)[index]

    def __len__(self):
        return 2

    @property
    def diagnostics(self) -> Diagnostics:
        """The search's :class:`~rfq_theory.results.Diagnostics` (the prediction's residual and tier)."""
        inner = self.prediction.diagnostics
        return Diagnostics(
            status="at_bound" if self.at_bound else inner.status,
            converged=self.converged and inner.converged,
            message=self.message,
            iterations=inner.iterations,
            function_calls=self.function_calls,
            residual=inner.residual,
            working_digits=inner.working_digits,
            condition=inner.condition,
            fallback=inner.fallback,
        )


def optimal_ridge(
    readout: Readout,
    model: DeepRF,
    samples,
    noise=0,
    target="linear",
    digits: int | None = None,
    bounds=None,
) -> OptimalRidge:
    """The ridge ``lambda*`` that minimises the readout's test error.

    A bounded Brent search in ``log10 lambda`` (tolerance ``1e-9``) on the
    float path, compared with the ridgeless end point where the readout
    allows ``lambda = 0``.  The float search locates ``lambda*`` to about
    1e-7 relative (the error is flat at the minimum, so its rounding moves
    the located minimum by the square root of the rounding); with
    ``digits`` the location is refined at that precision by a secant search
    for the zero of ``dE/d log lambda`` (central differences), which gives
    ``lambda*`` to about ``10^(-digits/3)`` relative.  A point of the search
    whose solve fails counts as an infinite error.
    """
    from scipy.optimize import minimize_scalar

    lo, hi = readout.bounds if bounds is None else bounds
    if not 0 < lo < hi:
        raise InputError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
    calls = [0]

    def err(log_lam):
        calls[0] += 1
        try:
            return float(readout.predict(model, samples, 10.0**log_lam, noise, target).test_error)
        except _POINT_FAILURES:
            return math.inf

    a, b = math.log10(lo), math.log10(hi)
    res = minimize_scalar(err, bounds=(a, b), method="bounded", options={"xatol": 1e-9})
    lam_star = 10.0 ** float(res.x)
    best = float(res.fun)
    at_bound = None
    tol = 1e-6 * (b - a)
    ridgeless = readout.predict(model, samples, 0, noise, target) if readout.zero_ridge else None
    if ridgeless is not None and float(ridgeless.test_error) <= best:
        lam_star = 0.0
        message = "the ridgeless estimator (lambda = 0) has the lowest test error"
    elif float(res.x) >= b - tol or err(b) <= best:
        at_bound, lam_star = "upper", float(hi)
        message = (
            f"the test error still decreases at the upper search bound lambda = {hi:g}: "
            "the optimum lies at or beyond it (widen bounds)"
        )
    elif float(res.x) <= a + tol:
        at_bound = "lower"
        message = (
            f"the test error still decreases at the lower search bound lambda = {lo:g}: "
            "the optimum lies at or below it (widen bounds)"
        )
    else:
        message = f"interior minimum at lambda = {lam_star:.8g}"
    polished = False
    if digits is not None and lam_star > 0 and at_bound is None:
        lam_star, extra = _polish(readout, model, samples, noise, target, digits, lam_star)
        calls[0] += extra
        polished = True
        message = f"interior minimum at lambda = {lam_star:.12g}"
    pred = readout.predict(model, samples, repr(lam_star), noise, target, digits=digits)
    return OptimalRidge(lam_star, pred, at_bound, (lo, hi), message, calls[0] + 1, bool(res.success), polished)


def _polish(readout, model, samples, noise, target, digits, lam0):
    """Secant search at ``digits + 5`` for the zero of ``dE/d log lambda``; returns ``(lambda*, solves)``."""
    from .precision import mp as mpmath

    work = digits + 5
    calls = [0]
    h = 10.0 ** (-digits / 3)

    def slope(t):
        with mpmath.workdps(work + 10):
            up = mpmath.exp(mpmath.mpf(t) + h)
            dn = mpmath.exp(mpmath.mpf(t) - h)
            calls[0] += 2
            eu = readout.predict(model, samples, mpmath.nstr(up, work + 5), noise, target, digits=work).test_error
            ed = readout.predict(model, samples, mpmath.nstr(dn, work + 5), noise, target, digits=work).test_error
            return float((eu - ed) / (2 * h))

    t0 = math.log(lam0)
    t1 = t0 + 1e-4
    f0, f1 = slope(t0), slope(t1)
    for _ in range(8):
        if f1 == f0:
            break
        t2 = t1 - f1 * (t1 - t0) / (f1 - f0)
        if not math.isfinite(t2) or abs(t2 - t0) > 0.1:
            return lam0, calls[0]
        t0, f0 = t1, f1
        t1, f1 = t2, slope(t2)
        if abs(t1 - t0) < 1e-13:
            break
    return math.exp(t1), calls[0]


# --------------------------------------------------------------------------
# the one-bit theorem
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TheoremResult:
    """Errors of a model's full-precision, one-bit and scaled one-bit twins under one readout."""

    full: Any
    sign: Any
    sign_scaled: Any
    difference_sign: object
    difference_scaled: object
    digits: int | None

    _headline = ("full", "sign", "sign_scaled", "difference_sign", "difference_scaled", "digits")
    __repr__ = result_repr

    @property
    def diagnostics(self) -> Diagnostics:
        """The worst of the three twins' records (failed before fallback before ok)."""
        ds = [self.full.diagnostics, self.sign.diagnostics, self.sign_scaled.diagnostics]
        rank = {"failed": 3, "at_bound": 2, "fallback": 1, "ok": 0}
        worst = max(ds, key=lambda d: rank.get(d.status, 0))
        return Diagnostics(
            status=worst.status,
            converged=all(d.converged for d in ds),
            message="; ".join(d.message for d in ds if d.message),
            iterations=sum(d.iterations for d in ds),
            function_calls=sum(d.function_calls for d in ds),
            residual=max(float(d.residual) for d in ds),
            working_digits=min(d.working_digits for d in ds),
            condition=max(float(d.condition) for d in ds),
            fallback=worst.fallback,
        )


def theorem(readout: Readout, model: DeepRF, samples, ridge=0, noise=0, target="linear", digits=None):
    """``readout.predict`` for ``model`` with every layer at full precision, ``sign`` and ``sign-scaled``.

    The readout is untouched.  Universality of the weight law makes the
    ``sign`` twin equal to full precision (same ``s^2 = 1``); the scaled
    sign (``s^2 = 2/pi``) changes every preactivation variance and so, in
    general, the error.
    """
    full, sign, scaled = (
        readout.predict(model.with_quantizers(q), samples, ridge, noise, target, digits=digits)
        for q in ("none", "sign", "sign-scaled")
    )

    def diff(a, b):
        if a.test_error == b.test_error:  # also inf == inf at the interpolation threshold
            return 0 * a.test_error if np.isfinite(float(a.test_error)) else 0.0
        return a.test_error - b.test_error

    return TheoremResult(full, sign, scaled, diff(sign, full), diff(scaled, full), digits)
