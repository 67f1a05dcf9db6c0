"""Derived quantities: curves over a grid, the optimal ridge, the one-bit theorem.

Thin entry points for the ridge readout; the algorithms are written once
over readouts in :mod:`rfq_theory.readouts`.  :func:`model_at` defines the
axes of a curve.
"""

from __future__ import annotations

from collections.abc import Sequence

from .axes import AXIS_MEANING, VARY_CHOICES
from .checks import InputError, check_positive
from .model import DeepRF
from .readouts import RIDGE_BOUNDS, OptimalRidge, RidgeReadout, TheoremResult, curve, theorem
from .readouts import optimal_ridge as _optimal_ridge
from .results import Curve

__all__ = ["VARY_CHOICES", "sweep", "optimal_ridge", "OptimalRidge", "one_bit_theorem", "TheoremResult", "model_at"]


def model_at(model: DeepRF, vary: str, value, samples, ridge):
    """The ``(model, samples, ridge)`` of one grid point: the one definition of each axis.

    - ``"samples"``: ``n = value``;
    - ``"width"``: the last width ``k_L = value`` (the double-descent axis);
    - ``"widths"``: every width multiplied by ``value`` (depth and the ratios
      between layers kept);
    - ``"ridge"``: ``lambda = value``.

    The values are absolute here; ``sweep(..., ratio=True)`` and the
    command line convert the ratios ``n/d`` and ``k_L/d`` first.
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
    meanings = "; ".join(f"{a} ({AXIS_MEANING[a][0]})" for a in VARY_CHOICES)
    raise InputError(f"vary must be one of {', '.join(VARY_CHOICES)}, got {vary!r}: {meanings}")


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
    ratio: bool = False,
) -> Curve:
    """Ridge predictions over a grid of sample sizes, last-layer widths or ridges.

    Parameters
    ----------
    vary:
        ``"samples"`` (learning curve, error vs ``n``), ``"width"``
        (error vs ``k_L``, the double-descent curve), ``"widths"`` (all
        widths times a factor) or ``"ridge"`` (see :func:`model_at`).
    values:
        Grid values: absolute ``n`` or ``k_L`` (``"width"`` is the absolute
        last width here), a widths factor, or ``lambda``.
    ratio:
        Read the values of ``"samples"`` and ``"width"`` as ratios to the
        input dimension ``d`` (``n = g d``, ``k_L = g d``), as ``rfq curve
        --grid`` does; ``"widths"`` and ``"ridge"`` are unchanged.
    samples, ridge:
        The fixed ``n`` and ``lambda`` for the quantities not varied.
    progress:
        Show a progress bar (default: on for more than 50 points when
        standard error is a terminal).

    Notes
    -----
    Returns a :class:`~rfq_theory.results.Curve`: a sequence of
    :class:`~rfq_theory.solver.Prediction`, one per value (indexing,
    iteration and ``len`` as on a list), with one NumPy array per quantity
    (``curve.test_error``, ``curve.kappa0``, ...) and ``curve.to_pandas()``
    (:func:`rfq_theory.readouts.curve` with the ridge readout).  Each point
    is warm-started from the previous ``kappa_0``; a point that does not
    converge is NaN with ``diagnostics.converged`` False.
    """
    return curve(RidgeReadout(), model, vary, values, samples, ridge, noise, target, digits, progress, ratio=ratio)


def optimal_ridge(
    model: DeepRF,
    samples,
    noise=0,
    target="linear",
    digits: int | None = None,
    bounds=RIDGE_BOUNDS,
) -> OptimalRidge:
    """The ridge ``lambda*`` that minimises the asymptotic test error of the ridge readout.

    :func:`rfq_theory.readouts.optimal_ridge` with :class:`~rfq_theory.readouts.RidgeReadout`:
    a bounded Brent search in ``log lambda`` on the float path (``lambda*``
    to about 1e-7 relative), compared with the ridgeless end point
    ``lambda = 0``; with ``digits`` the location is refined at that
    precision and the error evaluated there.

    Returns an :class:`OptimalRidge` (``lam, pred = optimal_ridge(...)``
    still works); ``result.at_bound`` and ``result.message`` report a
    minimum on the edge of ``bounds`` (for example a target the features
    cannot fit, whose error keeps falling as ``lambda`` grows).
    """
    return _optimal_ridge(RidgeReadout(), model, samples, noise, target, digits, bounds)


def one_bit_theorem(model: DeepRF, samples, ridge=0, noise=0, target="linear", digits: int | None = None):
    """Compare ``model`` with every random layer at full precision, ``sign`` and ``sign-scaled`` (ridge readout).

    :func:`rfq_theory.readouts.theorem` with the ridge readout; returns a :class:`TheoremResult`.
    """
    return theorem(RidgeReadout(), model, samples, ridge, noise, target, digits)
