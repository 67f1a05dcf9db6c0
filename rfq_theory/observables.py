"""Test and train error from the resolvent quantities: the one place of these formulas.

Both the asymptotic solver (:mod:`rfq_theory.solver`) and the finite-size
route on one realized network (``validation.montecarlo.finite_size``) end
in the same observables.  Given the effective ridge ``kappa`` and

- ``Var y = Var f*(g) + Delta`` and ``rho = mu1(f*)^2`` (:func:`target_moments`),
- ``s(kappa) - kappa s'(kappa)`` (the signal term),
- ``df2(kappa) = df1 + kappa df1'`` and the sample size ``n``,

the chain (:mod:`rfq_theory.chain`) gives, at ``kappa = kappa_L`` and with
derivatives in ``kappa_0`` (``kappa' = d kappa_L / d kappa_0``),

    df2 = df1 + kappa df1' = df1 + kappa (d df1 / d kappa_0) / kappa',
    s   = 1 / (1 + kappa_0)   (0 after a layer with kappa1 = 0),
    s'  = ds / dkappa_L = -s^2 / kappa'          (:func:`chain_readout`),

and the errors are

    E_test  = [Var y - rho (s - kappa s')] / (1 - df2/n)
            = bias + noise_part,  bias = [Var f* - rho (s - kappa s')] / (1 - df2/n),
                                  noise_part = Delta / (1 - df2/n),
    E_train = (lambda / kappa)^2 E_test                      (lambda > 0),
            = 0                                              (lambda = 0, n < rank),
            = (1 - rank/n)^2 E_test                          (lambda = 0, n > rank).

Every function works with Python floats and with mpmath numbers alike, and
(except :func:`regime`) with NumPy lanes and double-double lanes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .precision import is_mpf
from .precision import mp as mpmath

__all__ = ["target_moments", "chain_readout", "error_terms", "train_error", "regime", "REGIMES", "sign_label_error"]

#: The regimes a prediction can be in.
REGIMES = ("ridge", "ridgeless-underparameterized", "ridgeless-overparameterized", "interpolation-threshold")


def target_moments(target, digits: int = 15):
    """``(rho, Var f*(g))`` of a target ``f*`` at unit variance: ``rho = mu1^2``, ``Var f* = mu1^2 + mu_star^2``.

    ``target`` is any activation spec (default route: ``"linear"``, giving
    ``(1, 1)``); the numbers are ``mpmath.mpf`` with ``digits`` digits.
    """
    from .activation_coefficients import coefficients

    c = coefficients(target, 1, digits)
    return c.mu1**2, c.variance_of_sigma


def chain_readout(kappa0, kappa, dkappa, df1, ddf1, signal: bool, measure=None):
    """``(df2, s, s')`` from a walk of the chain: ``df2 = df1 + kappa ddf1 / kappa'``,
    ``s = 1/(1 + kappa_0)`` (0 when ``signal`` is False) and ``s' = -s^2 / kappa'``.

    ``kappa`` is ``kappa_L``, ``dkappa = d kappa_L / d kappa_0`` and
    ``ddf1 = d df1 / d kappa_0``.  With a structured input (``measure``, a
    :class:`~rfq_theory.input_spectrum.BaseMeasure`)
    ``s = s_0(kappa_0) = sum_i t_i lambda_i^2 / (lambda_i + kappa_0)`` and
    ``s' = s_0'(kappa_0) / kappa'``.
    """
    df2 = df1 + kappa * ddf1 / dkappa
    if signal and measure is not None:
        s, ds0 = measure.signal(kappa0)
        return df2, s, ds0 / dkappa
    if signal:
        s = 1 / (1 + kappa0)
        return df2, s, -(s * s) / dkappa
    zero = 0 * kappa0
    return df2, zero, zero


def error_terms(var_f, noise, rho, s_minus_ks, df2, n, denom=None) -> tuple[Any, Any, Any]:
    """``(bias, noise_part, test_error)`` with ``E_test = [Var f* + Delta - rho (s - kappa s')] / (1 - df2/n)``.

    ``var_f`` is ``Var f*(g)`` (noise excluded) and ``noise`` is ``Delta``.
    ``denom`` is ``1 - df2/n`` when the caller has it in a better-conditioned
    form (``(n - rank)/n`` at the branch edge).  The caller checks
    ``1 - df2/n > 0`` (the physical branch).
    """
    if denom is None:
        denom = 1 - df2 / n
    bias = (var_f - rho * s_minus_ks) / denom
    noise_part = noise / denom
    return bias, noise_part, bias + noise_part


def train_error(test, n, ridge, kappa, rank):
    """``E_train``: ``(lambda/kappa)^2 E_test`` for ``lambda > 0``; at ``lambda = 0`` it is
    ``0`` when ``kappa > 0`` (interpolation, ``n < rank``) and ``((n - rank)/n)^2 E_test`` when ``kappa = 0``.

    On float lanes the three cases are chosen per lane; on double-double
    lanes every lane is taken to have ``lambda > 0``.
    """

    def ratio_squared_times_test(num, den):
        r = num / den
        return r * r * test

    if hasattr(test, "hi"):  # double-double lanes (ridge lanes)
        return ratio_squared_times_test(ridge, kappa)
    if isinstance(test, np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                ridge > 0,
                ratio_squared_times_test(ridge, kappa),
                np.where(kappa > 0, 0.0, ratio_squared_times_test(n - rank, n)),
            )
    if ridge > 0:
        return ratio_squared_times_test(ridge, kappa)
    if kappa > 0:
        return 0 * test
    return ratio_squared_times_test(n - rank, n)


def regime(n, ridge, rank) -> str:
    """``"ridge"`` for ``lambda > 0``; for ``lambda = 0`` the side of the interpolation threshold ``n = rank``."""
    if ridge > 0:
        return "ridge"
    if n > rank:
        return "ridgeless-underparameterized"
    if n == rank:
        return "interpolation-threshold"
    return "ridgeless-overparameterized"


def sign_label_error(m, q, delta):
    """Classification error of a readout on ``y = sign(g + sqrt(Delta) xi)`` labels.

    ``P(sign(w.z) != y) = arccos(m / sqrt(q (1 + Delta))) / pi`` with the
    order parameters ``m`` (overlap with the teacher) and ``q`` (the
    readout's output variance); for floats, mpmath numbers and NumPy lanes
    (the cosine is clipped to ``[-1, 1]`` against rounding).
    """
    if isinstance(m, np.ndarray):
        return np.arccos(np.clip(m / np.sqrt(q * (1 + delta)), -1.0, 1.0)) / np.pi
    if is_mpf(m):
        return mpmath.acos(m / mpmath.sqrt(q * (1 + delta))) / mpmath.pi
    return math.acos(max(-1.0, min(1.0, m / math.sqrt(q * (1 + delta))))) / math.pi
