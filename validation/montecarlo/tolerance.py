"""Pass/fail rule for Monte Carlo vs theory, and proportional-regime warnings.

A row passes when

    |MC - theory| <= z_crit(T) * SE + C_FS * |theory| / m + ABSOLUTE_FLOOR,

- ``SE`` is the standard error of the Monte Carlo mean over ``T`` draws;
  ``z = (MC - theory) / SE`` is reported as is.
- ``z_crit(T)`` is 3 in Gaussian units: the Student-t quantile with
  ``T - 1`` degrees of freedom of the same two-sided coverage (99.73 %),
  because ``SE`` itself is estimated from ``T`` draws (``t_7 = 4.53`` for
  8 draws, ``-> 3`` as ``T`` grows).  With the plain 3 and 8 draws about one
  row in 50 would fail by chance alone.
- ``C_FS * |theory| / m`` with ``m = min(d, k_1, ..., k_L, n)`` is the
  finite-size allowance: the theory is the proportional limit, and the mean
  error of a finite network differs from it by ``O(1/m)`` relative (the
  fluctuations, ``O(1/sqrt(m))``, are what ``SE`` measures).  ``C_FS = 2``
  is a deliberately small constant (0.25 % at ``m = 800``): the allowance
  only matters when ``SE`` is tiny, e.g. at large ridge.

An absolute floor ``ABSOLUTE_FLOOR = 1e-6`` is added to the allowance:
quantities that are zero in the limit (the training loss of a separable
hinge or logistic fit, the training error of an interpolating readout)
come out of a real solver as ``O(solver tolerance)`` numbers with a tiny
draw-to-draw spread, so without it a solver's ``3e-10`` against a theory
value of ``1e-28`` would read as a 20-sigma failure.  It is far below every
nonzero error the validation compares.

A verdict needs at least ``MIN_VERDICT_DRAWS = 6`` draws: below that the
Student-t quantile explodes (``z_crit`` = 236, 19.2, 9.2, 6.6 for 2..5 draws,
5.5 for 6), so almost any deviation would pass.  Rows with fewer draws get
the status ``inconclusive`` (their ``z`` is still reported), never ``pass``.
Rows whose theory value is not finite (the interpolation threshold) get
``n/a``.

:func:`verdict` is the one implementation of the rule; the comparison rows
and the scaling check both call it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import norm
from scipy.stats import t as student_t

__all__ = [
    "Z_GAUSS",
    "C_FINITE_SIZE",
    "MIN_VERDICT_DRAWS",
    "ABSOLUTE_FLOOR",
    "critical_z",
    "finite_size_allowance",
    "verdict",
    "regime_warnings",
]

#: Gaussian-units statistical threshold.
Z_GAUSS = 3.0
#: Constant of the finite-size allowance ``C_FS |theory| / min(sizes)``.
C_FINITE_SIZE = 2.0
#: Absolute part of the allowance (solver accuracy of quantities that are zero in theory).
ABSOLUTE_FLOOR = 1e-6
#: Fewest draws for a pass/fail verdict (``z_crit(6) = 5.5``, within twice ``Z_GAUSS``).
MIN_VERDICT_DRAWS = 6


def critical_z(draws: int, z: float = Z_GAUSS) -> float:
    """Student-t quantile (``draws - 1`` dof) with the two-sided coverage of ``|Z| <= z``."""
    if draws < 2:
        raise ValueError(f"draws must be >= 2 to estimate a standard error, got {draws!r}")
    return float(student_t.ppf(norm.cdf(z), draws - 1))


def finite_size_allowance(theory: float, sizes: Sequence[float], c: float = C_FINITE_SIZE) -> float:
    """``c * |theory| / min(sizes)`` (``sizes`` = ``d, k_1..k_L, n``)."""
    return c * abs(theory) / min(float(s) for s in sizes)


def verdict(
    mc_mean: float, mc_se: float, theory: float, draws: int, sizes: Sequence[float], scale: float | None = None
) -> dict:
    """Apply the rule: ``{"z", "z_crit", "allowance", "status"}``.

    ``status`` is ``pass`` or ``fail``; ``inconclusive`` with fewer than
    :data:`MIN_VERDICT_DRAWS` draws; ``n/a`` when the theory value is not
    finite.  Undefined numbers are ``nan`` (written as ``null`` in files).
    ``scale`` replaces ``|theory|`` in the finite-size allowance (a paired
    difference, whose theory value may be 0, uses the larger of its two
    theory values).
    """
    if not math.isfinite(theory):
        return {"z": float("nan"), "z_crit": float("nan"), "allowance": float("nan"), "status": "n/a"}
    zc = critical_z(draws)
    allow = finite_size_allowance(theory if scale is None else scale, sizes)
    diff = mc_mean - theory
    z = diff / mc_se if mc_se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    if draws < MIN_VERDICT_DRAWS:
        status = "inconclusive"
    else:
        status = "pass" if abs(diff) <= zc * mc_se + allow + ABSOLUTE_FLOOR else "fail"
    return {"z": z, "z_crit": zc, "allowance": allow, "status": status}


def regime_warnings(input_dim: float, widths: Sequence[float], samples: float) -> list[str]:
    """Warnings for sizes far from the proportional regime: ``>= d^2/10`` or ``<= 10``."""
    d = float(input_dim)
    out = []
    named = (
        [("input_dim", d)] + [(f"widths[{i}]", float(k)) for i, k in enumerate(widths)] + [("samples", float(samples))]
    )
    for name, value in named:
        if value <= 10:
            out.append(f"{name} = {value:g} <= 10: far below the proportional regime")
        elif name != "input_dim" and value >= d * d / 10:
            out.append(f"{name} = {value:g} >= d^2/10 = {d * d / 10:g}: far outside the proportional regime")
    return out
