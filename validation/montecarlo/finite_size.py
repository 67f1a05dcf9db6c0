"""Finite-size route: the ridge formulas of ``docs/theory.md`` (section 3) on one realized network.

For one drawn network (the matrices of :func:`validation.montecarlo.simulate.draw_weights`,
same ``(seed, trial)`` -> same matrices) with unit-variance rescaled
quantized weights ``F_l = Q_l(W_l) / (s_l sqrt(k_{l-1}))``:

    Omega_0 = Sigma,  Phi_0 = Sigma,
    Omega_l = kappa1_l^2 F_l Omega_{l-1} F_l^T + kappastar_l^2 I,
    Phi_l   = kappa1_l F_l Phi_{l-1},

with ``Sigma = I_d`` for isotropic inputs and, for a structured model,
``Sigma = R diag(lambda) R^T`` of the draw's input law
(:mod:`validation.montecarlo.inputs`: ``R = I`` in the axis basis, the
draw's Haar rotation in the rotated one).  ``Phi_L`` is the
cross-covariance of the linear part of the features with ``x``, so the
features' covariance with the teacher ``g = beta . x / sqrt(d)`` is
``Phi_L beta / sqrt(d)`` and the signal functional of a given teacher is
``s_beta(k) = (1/d) beta^T Phi_L^T (Omega_L + k)^-1 Phi_L beta``.  The
simulated teacher is ``beta = R (sqrt(beta2_i) s_i)_i`` with independent
random signs ``s_i`` (``E s s^T = I``), so its average over the signs is

    s(k) = (1/d) tr[diag(beta2) R^T Phi_L^T (Omega_L + k)^-1 Phi_L R]
         = (1/d) sum_i beta2_i [Phi_L'^T (Omega_L + k)^-1 Phi_L']_ii,
    Phi_L' = Phi_L R     (the columns in the eigenbasis of Sigma, where beta2 lives),

with ``beta2`` rescaled so that ``(1/d) sum beta2_i lambda_i = 1``.
Isotropic inputs use ``theta ~ N(0, I_d)`` (``E theta theta^T = I``),
which is the same formula with ``R = I`` and ``beta2_i = 1``: today's
``s(k) = (1/d) tr[Phi_L^T (Omega_L + k)^-1 Phi_L]``.  In terms of
``B = Phi_L R diag(sqrt(beta2))``
(:meth:`validation.network.SimulatedNetwork.signal_matrix`), one ``eigh``
of ``Omega_L = U diag(omega) U^T`` and the weights
``r_i = ||row_i(U^T B)||^2`` give, for any ``(n, lambda)``,

    df1(k) = sum omega_i/(omega_i + k),   df2(k) = sum omega_i^2/(omega_i + k)^2,
    s(k)   = (1/d) sum r_i/(omega_i + k),
    lambda = kappa (1 - df1(kappa)/n)            (kappa > 0, physical root),
    E_test = [Var y - rho (s - kappa s')(kappa)] / (1 - df2(kappa)/n),
    E_train = (lambda/kappa)^2 E_test,

with ``s - kappa s' = (1/d) sum r_i (omega_i + 2 kappa)/(omega_i + kappa)^2``.
At ``lambda = 0``: if ``rank(Omega_L) > n`` then ``kappa`` solves
``df1(kappa) = n`` and ``E_train = 0``; if ``rank < n`` then ``kappa = 0``,
``E_test = [Var y - rho s(0)]/(1 - rank/n)`` and
``E_train = (1 - rank/n)^2 E_test``; ``rank = n`` is the interpolation
threshold (infinite error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from rfq_theory import DeepRF
from rfq_theory.observables import error_terms, regime, target_moments, train_error

from ..network import SimulatedNetwork, unit_variance_matrices

__all__ = [
    "FiniteSizePrediction",
    "FiniteSizeSpectrum",
    "unit_variance_matrices",
    "finite_size_spectrum",
    "finite_size_predict",
]


@dataclass(frozen=True)
class FiniteSizePrediction:
    """Section-3 prediction for one realized network at one ``(n, lambda)``."""

    samples: float
    ridge: float
    test_error: float
    train_error: float
    kappa: float
    df1: float
    df2: float
    regime: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class FiniteSizeSpectrum:
    """Eigen-data of ``Omega_L`` and ``Phi_L`` of one network; :meth:`predict` is cheap.

    Attributes: ``omega`` (eigenvalues of ``Omega_L``), ``r`` (the weights
    ``||row_i(U^T Phi_L)||^2``), ``input_dim`` (``d``), ``rank``.
    """

    def __init__(self, omega: np.ndarray, r: np.ndarray, input_dim: int):
        omega = np.asarray(omega, dtype=float)
        self.tol = float(max(omega.max(initial=0.0), 1.0) * omega.size * np.finfo(float).eps * 10)
        self.omega = np.where(omega > self.tol, omega, 0.0)
        self.r = np.asarray(r, dtype=float)
        self.input_dim = int(input_dim)
        self.rank = int(np.count_nonzero(self.omega))

    # section-3 functionals -------------------------------------------------
    def df1(self, k: float) -> float:
        """``tr Omega (Omega + k)^-1``."""
        w = self.omega[self.omega > 0]
        return float(np.sum(w / (w + k)))

    def df2(self, k: float) -> float:
        """``tr Omega^2 (Omega + k)^-2``."""
        w = self.omega[self.omega > 0]
        return float(np.sum((w / (w + k)) ** 2))

    def s_minus_ks(self, k: float) -> float:
        """``s(k) - k s'(k) = (1/d) sum r_i (omega_i + 2k)/(omega_i + k)^2`` (``k = 0``: null directions skipped)."""
        m = self.omega > 0 if k == 0 else slice(None)
        w, r = self.omega[m], self.r[m]
        return float(np.sum(r * (w + 2 * k) / (w + k) ** 2)) / self.input_dim

    def kappa(self, samples: float, ridge: float) -> float:
        """Physical root of ``ridge = kappa (1 - df1(kappa)/n)`` (``nan`` at the interpolation threshold)."""
        n = float(samples)
        if self.rank > n:
            lo = brentq(
                lambda t: self.df1(math.exp(t)) - n,
                math.log(self.tol) - 5,
                math.log(self.omega.max()) + 5 + math.log(self.rank),
                xtol=1e-14,
                rtol=1e-14,
            )
            lo = math.exp(lo)
        else:
            lo = 0.0
        if ridge == 0:
            return lo if self.rank != n else float("nan")
        hi = ridge + float(self.omega.sum()) / n
        h = lambda k: k * (1 - self.df1(k) / n) - ridge
        return brentq(h, lo, hi, xtol=1e-15 * max(hi, 1.0), rtol=4 * np.finfo(float).eps, maxiter=500)

    def predict(self, samples, ridge, noise=0.0, target="linear") -> FiniteSizePrediction:
        """Test and train error of this network at ``(samples, ridge)`` (section 3, module docstring)."""
        n, lam = float(samples), float(ridge)
        if not (n > 0 and math.isfinite(n)):
            raise ValueError(f"samples must be a positive number, got {samples!r}")
        if not (lam >= 0 and math.isfinite(lam)):
            raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
        rho, var_f = (float(x) for x in target_moments(target, 15))
        k = self.kappa(n, lam)
        if math.isnan(k):
            return FiniteSizePrediction(
                n, lam, math.inf, 0.0, k, float(self.rank), float(self.rank), "interpolation-threshold"
            )
        d2 = self.df2(k) if k > 0 else float(self.rank)
        d1 = self.df1(k) if k > 0 else float(self.rank)
        _, _, test = error_terms(var_f, float(noise), rho, self.s_minus_ks(k), d2, n)
        train = float(train_error(test, n, lam, k, self.rank))
        return FiniteSizePrediction(n, lam, test, train, k, d1, d2, regime(n, lam, self.rank))


def finite_size_spectrum(
    model: DeepRF, seed: int = 0, trial: int = 0, weights=None, basis: str = "axis"
) -> FiniteSizeSpectrum:
    """Build ``Omega_L``, ``Phi_L`` for draw ``(seed, trial)`` of ``model`` and eigendecompose ``Omega_L``.

    ``weights`` may pass the quantized matrices directly (default:
    :func:`validation.montecarlo.simulate.draw_weights`); ``basis`` places
    ``Sigma`` of a structured model (``axis`` or ``rotated``; the rotation of
    draw ``(seed, trial)``).
    """
    net = SimulatedNetwork(model, seed, trial, weights=weights, basis=basis)
    omega, phi = net.omega_phi(eigenbasis=True)
    w, U = np.linalg.eigh(omega)
    r = np.sum((U.T @ net.signal_matrix(phi)) ** 2, axis=1)
    return FiniteSizeSpectrum(w, r, net.sizes[0])


def finite_size_predict(
    model: DeepRF, samples, ridge, noise=0.0, target="linear", seed=0, trial=0, basis: str = "axis"
) -> FiniteSizePrediction:
    """One-shot :func:`finite_size_spectrum` + :meth:`FiniteSizeSpectrum.predict`."""
    return finite_size_spectrum(model, seed, trial, basis=basis).predict(samples, ridge, noise, target)
