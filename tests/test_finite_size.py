"""Finite-size route on realized networks (the section-3 formulas of docs/theory.md)."""

import math

import numpy as np
import pytest

from rfq_theory import DeepRF, predict
from validation.montecarlo.finite_size import (
    FiniteSizeSpectrum,
    finite_size_predict,
    finite_size_spectrum,
    unit_variance_matrices,
)
from validation.montecarlo.simulate import draw_weights


def _omega_phi(model, F):
    d = int(model.input_dim)
    om, ph = np.eye(d), np.eye(d)
    for lc, Fl in zip(model.layers(), F):
        k1, ks = float(lc.kappa1), float(lc.kappa_star)
        om = k1**2 * Fl @ om @ Fl.T + ks**2 * np.eye(Fl.shape[0])
        ph = k1 * Fl @ ph
    return om, ph


def test_unit_variance_matrices_are_the_simulators_matrices_rescaled():
    model = DeepRF(40, (50, 30), "tanh", ("sign-scaled", "ternary:0.5"))
    W = draw_weights(model, seed=9, trial=0)
    F = unit_variance_matrices(model, W)
    s2 = [float(lc.s2) for lc in model.layers()]
    for Wl, Fl, s, k_prev in zip(W, F, s2, (40, 50)):
        np.testing.assert_allclose(Fl, Wl / math.sqrt(s * k_prev))
    big = unit_variance_matrices(
        DeepRF(400, (300,), "tanh", "ternary:0.5"), draw_weights(DeepRF(400, (300,), "tanh", "ternary:0.5"))
    )
    assert np.mean(big[0] ** 2) * 400 == pytest.approx(1.0, rel=0.02)  # unit variance entries


def test_spectrum_functionals_match_dense_linear_algebra():
    model = DeepRF(30, (40, 25), ("relu", "erf"), "sign")
    sp = finite_size_spectrum(model, seed=1)
    om, ph = _omega_phi(model, unit_variance_matrices(model, draw_weights(model, 1, 0)))
    k = 0.37
    inv = np.linalg.inv(om + k * np.eye(25))
    assert sp.df1(k) == pytest.approx(np.trace(om @ inv), rel=1e-10)
    assert sp.df2(k) == pytest.approx(np.trace(om @ inv @ om @ inv), rel=1e-10)
    s = np.trace(ph.T @ inv @ ph) / 30
    s_prime = -np.trace(ph.T @ inv @ inv @ ph) / 30
    assert sp.s_minus_ks(k) == pytest.approx(s - k * s_prime, rel=1e-10)
    pred = sp.predict(50, 0.05, 0.1)
    assert pred.kappa * (1 - sp.df1(pred.kappa) / 50) == pytest.approx(0.05, rel=1e-10)
    assert pred.train_error == pytest.approx((0.05 / pred.kappa) ** 2 * pred.test_error)


def _gaussian_model_error(model, n, lam, noise, reps, seed):
    """Mean exact test error of ridge on the linearized Gaussian model with the drawn F.

    Features ``z_l = kappa1_l F_l z_{l-1} + kappastar_l xi_l`` (fresh xi), target
    ``y = <theta, x>/sqrt(d) + eps``; given ``w`` the test error is exactly
    ``|theta|^2/d + Delta - 2 w^T Phi theta/sqrt(d) + w^T Omega w``.
    """
    F = unit_variance_matrices(model, draw_weights(model, 0, 0))
    om, ph = _omega_phi(model, F)
    d = int(model.input_dim)
    rng = np.random.default_rng(seed)
    errs, trains = [], []
    for _ in range(reps):
        theta = rng.standard_normal(d)
        X = rng.standard_normal((n, d))
        z = X
        for lc, Fl in zip(model.layers(), F):
            z = float(lc.kappa1) * z @ Fl.T + float(lc.kappa_star) * rng.standard_normal((n, Fl.shape[0]))
        y = X @ theta / math.sqrt(d) + math.sqrt(noise) * rng.standard_normal(n)
        p = z.shape[1]
        w = np.linalg.solve(z.T @ z / n + lam * np.eye(p), z.T @ y / n) if lam > 0 else np.linalg.pinv(z) @ y
        errs.append(theta @ theta / d + noise - 2 * w @ (ph @ theta) / math.sqrt(d) + w @ om @ w)
        trains.append(np.mean((y - z @ w) ** 2))
    se = lambda v: np.std(v, ddof=1) / math.sqrt(len(v))
    return np.mean(errs), se(errs), np.mean(trains), se(trains)


@pytest.mark.slow
@pytest.mark.parametrize(
    "n,lam",
    [(80, 1e-2), (160, 0.1), (50, 0.0), (200, 0.0)],
    ids=["ridge", "big-ridge", "ridgeless-over", "ridgeless-under"],
)
def test_finite_size_route_equals_the_gaussian_model(n, lam):
    """Section 3 on the realized Omega, Phi vs direct simulation of that Gaussian model.

    Tolerance: 3.5 standard errors plus a 2/n relative allowance for the
    O(1/n) error of the deterministic equivalent at fixed Omega.
    """
    model = DeepRF(80, (120, 100), ("tanh", "relu"), "sign")
    pred = finite_size_spectrum(model, 0, 0).predict(n, lam, 0.1)
    mean, se, train, train_se = _gaussian_model_error(model, n, lam, 0.1, reps=150, seed=n)
    assert abs(mean - pred.test_error) <= 3.5 * se + 2 / n * pred.test_error, (mean, se, pred)
    assert abs(train - pred.train_error) <= 3.5 * train_se + 2 / n * pred.test_error + 1e-12, (train, train_se, pred)


def test_finite_size_route_agrees_with_theory_to_about_one_over_width():
    model = DeepRF(300, (600, 450), ("tanh", "relu"), "sign")
    sp = finite_size_spectrum(model, seed=3)
    for n, lam in [(150, 1e-2), (600, 1e-3), (900, 0.0), (300, 0.0)]:
        th = float(predict(model, n, lam, 0.1).test_error)
        fs = sp.predict(n, lam, 0.1).test_error
        assert abs(fs - th) <= 5 / 300 * th, (n, lam, fs, th)


def test_ridgeless_branches_are_the_limits_of_small_ridge():
    model = DeepRF(60, (90,), "erf", "sign")
    sp = finite_size_spectrum(model, seed=0)
    assert sp.rank == 90
    for n, regime in [(50, "ridgeless-overparameterized"), (140, "ridgeless-underparameterized")]:
        at0 = sp.predict(n, 0.0, 0.2)
        near = sp.predict(n, 1e-9, 0.2)
        assert at0.regime == regime
        assert at0.test_error == pytest.approx(near.test_error, rel=1e-5)
        assert at0.train_error == pytest.approx(near.train_error, rel=1e-4, abs=1e-9)
    thr = sp.predict(90, 0.0, 0.2)
    assert thr.test_error == math.inf and thr.regime == "interpolation-threshold"


def test_rank_deficient_omega_with_a_linear_last_layer():
    # kappastar = 0 for a linear layer: Omega_L = F F^T has rank min(d, k) = 20 < 30
    om = np.diag([0.0] * 10 + list(np.linspace(0.5, 2, 20)))
    sp = FiniteSizeSpectrum(np.diag(om), np.r_[np.zeros(10), np.ones(20)], 20)
    assert sp.rank == 20
    under = sp.predict(40, 0.0)
    assert under.regime == "ridgeless-underparameterized" and math.isfinite(under.test_error)
    assert sp.predict(20, 0.0).test_error == math.inf
    over = sp.predict(10, 0.0)
    assert over.regime == "ridgeless-overparameterized" and over.df1 == pytest.approx(10)


@pytest.mark.parametrize(
    "kwargs,word", [(dict(samples=0, ridge=0.1), "samples"), (dict(samples=10, ridge=-1), "ridge")]
)
def test_invalid_inputs(kwargs, word):
    sp = finite_size_spectrum(DeepRF(10, (12,), "tanh"))
    with pytest.raises(ValueError, match=word):
        sp.predict(**kwargs)


def test_one_shot_helper_and_nonlinear_target():
    model = DeepRF(50, (70,), "tanh", "sign")
    a = finite_size_predict(model, 60, 0.1, 0.1, "tanh", seed=2)
    b = finite_size_spectrum(model, 2).predict(60, 0.1, 0.1, "tanh")
    assert a == b
    th = predict(model, 60, 0.1, 0.1, "tanh")
    assert a.test_error == pytest.approx(float(th.test_error), rel=0.1)
