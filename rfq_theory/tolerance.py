"""Pass/fail rule for Monte Carlo vs theory.

A row passes when::

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

:func:`verdict` is the one implementation of the rule; the Monte Carlo
validation (``validation.montecarlo``) and the assertions of
:mod:`rfq_theory.testing` call it.  :func:`paired_verdict` applies the same
rule to paired differences whose theory value is 0 (a model and its one-bit
twin simulated on the same draws).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import norm
from scipy.stats import t as student_t

__all__ = [
    "Z_GAUSS",
    "C_FINITE_SIZE",
    "ABSOLUTE_FLOOR",
    "MIN_VERDICT_DRAWS",
    "critical_z",
    "finite_size_allowance",
    "verdict",
    "paired_verdict",
    "standard_error",
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
    mc_mean: float,
    mc_se: float,
    theory: float,
    draws: int,
    sizes: Sequence[float],
    scale: float | None = None,
    z: float = Z_GAUSS,
    c: float = C_FINITE_SIZE,
) -> dict:
    """Apply the rule: ``{"z", "z_crit", "allowance", "status"}``.

    ``status`` is ``pass`` or ``fail``; ``inconclusive`` with fewer than
    :data:`MIN_VERDICT_DRAWS` draws; ``n/a`` when the theory value is not
    finite.  Undefined numbers are ``nan`` (written as ``null`` in files).
    ``scale`` replaces ``|theory|`` in the finite-size allowance (a paired
    difference, whose theory value may be 0, uses the larger of its two
    theory values).  ``z`` (Gaussian units) and ``c`` (the finite-size
    constant) default to the project's rule.
    """
    if not math.isfinite(theory):
        return {"z": float("nan"), "z_crit": float("nan"), "allowance": float("nan"), "status": "n/a"}
    zc = critical_z(draws, z)
    allow = finite_size_allowance(theory if scale is None else scale, sizes, c)
    diff = mc_mean - theory
    z = diff / mc_se if mc_se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    if draws < MIN_VERDICT_DRAWS:
        status = "inconclusive"
    else:
        status = "pass" if abs(diff) <= zc * mc_se + allow + ABSOLUTE_FLOOR else "fail"
    return {"z": z, "z_crit": zc, "allowance": allow, "status": status}


def standard_error(values: Sequence[float]) -> float:
    """``std(ddof=1) / sqrt(T)`` of ``T`` per-draw values (``nan`` for fewer than 2)."""
    xs = [float(v) for v in values]
    if len(xs) < 2:
        return float("nan")
    mean = math.fsum(xs) / len(xs)
    var = math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return math.sqrt(var / len(xs))


def paired_verdict(
    differences: Sequence[float],
    scale: float = 0.0,
    sizes: Sequence[float] | None = None,
    z: float = Z_GAUSS,
    c: float = C_FINITE_SIZE,
) -> dict:
    """The rule for paired differences ``a_t - b_t`` whose theory value is 0.

    ``|mean| <= z_crit(T) * SE + C_FS * scale / min(sizes)`` (no allowance
    when ``sizes`` is ``None``); returns :func:`verdict`'s dict plus
    ``mean`` and ``se``.
    """
    diffs = [float(v) for v in differences]
    mean = math.fsum(diffs) / len(diffs) if diffs else float("nan")
    se = standard_error(diffs)
    if len(diffs) < 2 or not math.isfinite(se):
        raise ValueError(f"paired differences need at least 2 finite draws, got {len(diffs)}")
    if sizes is None:
        out = verdict(mean, se, 0.0, len(diffs), (1.0,), scale=0.0, z=z, c=c)
    else:
        out = verdict(mean, se, 0.0, len(diffs), sizes, scale=scale, z=z, c=c)
    out.update(mean=mean, se=se)
    return out
