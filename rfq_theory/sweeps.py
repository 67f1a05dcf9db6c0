"""Derived quantities: curves over a grid, the optimal ridge, the one-bit theorem.

All of them call :func:`rfq_theory.solver.predict`, warm-starting each grid
point from the previous solution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.optimize import minimize_scalar

from .axes import VARY_CHOICES
from .checks import InputError, check_nonnegative, check_positive
from .model import DeepRF
from .solver import Prediction, predict

__all__ = ["VARY_CHOICES", "sweep", "optimal_ridge", "OptimalRidge", "one_bit_theorem", "TheoremResult", "model_at"]


def model_at(model: DeepRF, vary: str, value, samples, ridge):
    """The ``(model, samples, ridge)`` of one grid point: the one definition of each axis.

    - ``"samples"``: ``n = value``;
    - ``"width"``: the last width ``k_L = value`` (the double-descent axis);
    - ``"widths"``: every width multiplied by ``value`` (depth and the ratios
      between layers kept);
    - ``"ridge"``: ``lambda = value``.

    ``sweep``, ``rfq curve``, ``rfq validate`` and the demo all use it.
    """
    if vary == "samples":
        return model, value, ridge
    if vary == "width":
        return model.with_widths(tuple(model.widths[:-1]) + (value,)), samples, ridge
    if vary == "widths":
        factor = check_positive(value, "widths factor")
        return model.with_widths(tuple(check_positive(w, "width") * factor for w in model.widths)), samples, ridge
    if vary == "ridge":
        return model, samples, value
    raise InputError(f"vary must be one of {', '.join(VARY_CHOICES)}, got {vary!r}")


def sweep(
    model: DeepRF,
    vary: str,
    values: Sequence,
    samples=None,
    ridge=0,
    noise=0,
    target="linear",
    digits: int | None = None,
    progress: bool | None = None,
):
    """Predictions over a grid of sample sizes, last-layer widths or ridges.

    Parameters
    ----------
    vary:
        ``"samples"`` (learning curve, error vs ``n``), ``"width"``
        (error vs ``k_L``, the double-descent curve), ``"widths"`` (all
        widths times a factor) or ``"ridge"`` (see :func:`model_at`).
    values:
        Grid values (absolute ``n``, ``k_L``, ``lambda``, or the widths factor).
    samples, ridge:
        The fixed ``n`` and ``lambda`` for the quantities not varied.
    progress:
        Show a progress bar (default: on for more than 50 points when
        standard error is a terminal).

    Notes
    -----
    Returns a list of :class:`~rfq_theory.solver.Prediction`, one per value.
    Each point is warm-started from the previous ``kappa_0``.
    """
    if vary not in VARY_CHOICES:
        raise InputError(f"vary must be one of {', '.join(VARY_CHOICES)}, got {vary!r}")
    values = list(values)
    if not values:
        raise InputError("values must hold at least one grid point")
    if vary != "samples" and samples is None:
        raise InputError("samples is required unless vary='samples'")
    for i, v in enumerate(values):
        (check_nonnegative if vary == "ridge" else check_positive)(v, f"values[{i}]")
    disable = None if progress is None and len(values) > 50 else not progress
    from tqdm.auto import tqdm

    out = []
    guess = None
    for value in tqdm(values, desc=f"sweep {vary}", disable=disable, leave=False):
        m, n, lam = model_at(model, vary, value, samples, ridge)
        pred = predict(m, n, lam, noise, target, digits=digits, guess=guess)
        guess = pred.kappa0 if pred.kappa0 is not None and vary not in ("width", "widths") else None
        out.append(pred)
    return out


@dataclass(frozen=True)
class OptimalRidge:
    """Result of :func:`optimal_ridge` (unpacks as ``ridge, prediction``).

    Attributes
    ----------
    ridge:
        ``lambda*`` (``0.0`` when the ridgeless estimator is best).
    prediction:
        :class:`~rfq_theory.solver.Prediction` at ``lambda*``.
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
    """

    ridge: float
    prediction: Prediction
    at_bound: str | None
    bounds: tuple
    message: str
    function_calls: int
    converged: bool

    def __iter__(self):
        return iter((self.ridge, self.prediction))

    def __getitem__(self, index):
        """``result[0]`` is ``ridge``, ``result[1]`` the prediction (tuple compatibility)."""
        return (self.ridge, self.prediction)[index]

    def __len__(self):
        return 2


def optimal_ridge(
    model: DeepRF,
    samples,
    noise=0,
    target="linear",
    digits: int | None = None,
    bounds=(1e-10, 1e4),
) -> OptimalRidge:
    """The ridge ``lambda*`` that minimises the asymptotic test error.

    The minimum is located on the float path (bounded Brent search in
    ``log lambda``, compared with the ridgeless end point ``lambda = 0``),
    so ``lambda*`` is accurate to about 1e-7 relative; the error at
    ``lambda*`` is then evaluated at ``digits`` (the error is flat there,
    so it is accurate to second order in the location).

    Returns an :class:`OptimalRidge` (``lam, pred = optimal_ridge(...)``
    still works); ``result.at_bound`` and ``result.message`` report a
    minimum on the edge of ``bounds`` (for example a target the features
    cannot fit, whose error keeps falling as ``lambda`` grows).
    """
    lo, hi = bounds
    if not 0 < lo < hi:
        raise InputError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
    calls = [0]

    def err(log_lam):
        calls[0] += 1
        return float(predict(model, samples, 10.0**log_lam, noise, target).test_error)

    a, b = math.log10(lo), math.log10(hi)
    res = minimize_scalar(err, bounds=(a, b), method="bounded", options={"xatol": 1e-9})
    lam_star = 10.0 ** float(res.x)
    best = float(res.fun)
    ridgeless = predict(model, samples, 0, noise, target)
    at_bound = None
    tol = 1e-6 * (b - a)
    if float(ridgeless.test_error) <= best:
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
    pred = predict(model, samples, repr(lam_star), noise, target, digits=digits)
    return OptimalRidge(lam_star, pred, at_bound, (lo, hi), message, calls[0] + 1, bool(res.success))


@dataclass(frozen=True)
class TheoremResult:
    """Errors of a model's full-precision, one-bit and scaled one-bit twins."""

    full: Prediction
    sign: Prediction
    sign_scaled: Prediction
    difference_sign: object
    difference_scaled: object
    digits: int | None


def one_bit_theorem(model: DeepRF, samples, ridge=0, noise=0, target="linear", digits: int | None = None):
    """Compare ``model`` with every random layer at full precision, ``sign`` and ``sign-scaled``.

    The readout is untouched.  Universality of the weight law makes the
    ``sign`` twin equal to full precision (same ``s^2 = 1``); the scaled
    sign (``s^2 = 2/pi``) changes every preactivation variance and so, in
    general, the error.
    """
    full = predict(model.with_quantizers("none"), samples, ridge, noise, target, digits=digits)
    sign = predict(model.with_quantizers("sign"), samples, ridge, noise, target, digits=digits)
    scaled = predict(model.with_quantizers("sign-scaled"), samples, ridge, noise, target, digits=digits)

    def diff(a, b):
        if a.test_error == b.test_error:  # also inf == inf at the interpolation threshold
            return 0 * a.var_y
        return a.test_error - b.test_error

    return TheoremResult(
        full=full,
        sign=sign,
        sign_scaled=scaled,
        difference_sign=diff(sign, full),
        difference_scaled=diff(scaled, full),
        digits=digits,
    )
