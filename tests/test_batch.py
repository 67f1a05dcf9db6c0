"""Vectorized float solver: lanes against the scalar paths (float and 30-digit mpmath), limits, regimes."""

import math
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_theory import DeepRF, InputError, predict
from rfq_theory.batch import (
    LOSSES,
    REGIMES,
    NonConvergenceWarning,
    optimal_ridge_batch,
    solve_batch,
)
from rfq_theory.sweeps import optimal_ridge

MODEL3 = DeepRF(1000, (2000, 1500, 1000), ("tanh", "relu", "erf"), "sign")
MODELS = {
    "3-layer sign": MODEL3,
    "2-layer relu ternary": DeepRF(500, (800, 600), ("relu", "tanh"), "ternary:0.5"),
    "1-layer gelu": DeepRF(300, (600,), ("gelu",), "none"),
}


def _rel(a, b):
    a, b = float(a), float(b)
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(b), 1e-300)


def _scalar(model, d, kL, n, lam, noise, digits=None):
    """The scalar path at exactly the lane's binary inputs (mpf of the floats)."""
    x = mpmath.mpf
    m = model.with_widths(tuple(model.widths[:-1]) + (x(float(kL)),))
    return predict(m, x(float(n)), x(float(lam)), x(float(noise)), digits=digits)


def _random_lanes(rng, size, d):
    """Lanes over the whole map: n/d, k_L/d in [0.1, 4], ridge log-uniform in [1e-9, 1e2] or 0,
    some lanes within 1e-7 of the ridgeless threshold and some at tiny ridge."""
    n = rng.uniform(0.1, 4, size) * d
    kL = rng.uniform(0.1, 4, size) * d
    lam = 10 ** rng.uniform(-9, 2, size)
    kind = rng.integers(0, 5, size)
    lam = np.where(kind == 0, 0.0, lam)
    near = kind == 1
    n = np.where(near, kL * (1 + rng.choice([-1, 1], size) * 10 ** rng.uniform(-7, -3, size)), n)
    lam = np.where(near, np.where(rng.random(size) < 0.5, 0.0, 1e-8), lam)
    noise = rng.uniform(0, 0.5, size)
    return n, kL, lam, noise


# ------------------------------------------------------------ vs scalar paths


@settings(max_examples=15)
@given(
    name=st.sampled_from(sorted(MODELS)),
    fallback=st.sampled_from(["mpmath", "dd"]),
    lanes=st.lists(
        st.tuples(
            st.floats(0.05, 5.0),
            st.floats(0.05, 5.0),
            st.one_of(st.just(0.0), st.floats(-6, 2).map(lambda e: 10.0**e)),
            st.floats(0.0, 1.0),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_lanes_match_scalar_float_predict(name, fallback, lanes):
    model = MODELS[name]
    d = float(model.input_dim)
    n = np.array([x[0] * d for x in lanes])
    kL = np.array([x[1] * d for x in lanes])
    lam = np.array([x[2] for x in lanes])
    noise = np.array([x[3] for x in lanes])
    widths = tuple(float(w) for w in model.widths[:-1]) + (kL,)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonConvergenceWarning)
        res = solve_batch(model, n, lam, noise, widths=widths, fallback=fallback)
    for i in range(len(lanes)):
        p = _scalar(model, d, kL[i], n[i], lam[i], noise[i])
        assert REGIMES[res.regime[i]] == p.regime
        assert _rel(res.test_error[i], p.test_error) < 1e-9, (i, lanes[i])
        assert _rel(res.train_error[i], p.train_error) < 1e-9 or abs(res.train_error[i] - float(p.train_error)) < 1e-15


def _check_against_mpmath(model, size, seed, fallback="mpmath"):
    rng = np.random.default_rng(seed)
    d = float(model.input_dim)
    n, kL, lam, noise = _random_lanes(rng, size, d)
    widths = tuple(float(w) for w in model.widths[:-1]) + (kL,)
    res = solve_batch(model, n, lam, noise, widths=widths, fallback=fallback)
    assert res.n_failed == 0
    worst = 0.0
    for i in range(size):
        p = _scalar(model, d, kL[i], n[i], lam[i], noise[i], digits=30)
        for got, want in ((res.test_error[i], p.test_error), (res.train_error[i], p.train_error)):
            if mpmath.isinf(want):
                assert math.isinf(got)
                continue
            if abs(want) < 1e-300:
                assert got == 0.0
                continue
            err = _rel(got, want)
            worst = max(worst, err)
            assert err < 1e-9, (i, n[i], kL[i], lam[i], got, want, res.fallback[i])
    return res, worst


@pytest.mark.slow
def test_eight_lanes_within_1e9_of_30_digit_mpmath():
    res, _ = _check_against_mpmath(MODEL3, 8, seed=7)
    assert res.shape == (8,)


@pytest.mark.slow
@pytest.mark.parametrize("fallback", ["mpmath", "dd"])
def test_hundred_lanes_within_1e9_of_30_digit_mpmath(fallback):
    res, worst = _check_against_mpmath(MODEL3, 100, seed=11, fallback=fallback)
    assert res.n_fallback > 0  # the sample reaches the tiny-ridge region
    assert worst < 1e-9


# ------------------------------------------------------------ regimes, limits


def test_ridgeless_regimes_and_threshold_is_inf_not_garbage():
    d = 1000.0
    kL = np.array([1500.0, 1500.0, 1500.0, 1500.0])
    n = np.array([1000.0, 1500.0, 2000.0, 1500.0 + 2.0**-20])
    res = solve_batch(MODEL3, n, 0.0, 0.2, widths=(2000.0, 1500.0, kL))
    assert [REGIMES[r] for r in res.regime] == [
        "ridgeless-overparameterized",
        "interpolation-threshold",
        "ridgeless-underparameterized",
        "ridgeless-underparameterized",
    ]
    assert math.isinf(res.test_error[1]) and res.test_error[1] > 0 and res.train_error[1] == 0
    assert res.converged.all()
    assert np.isfinite(res.test_error[[0, 2, 3]]).all()
    assert res.test_error[3] > 1e8  # diverges next to the threshold
    assert res.train_error[0] == 0.0  # interpolates the training set
    for i in (0, 2, 3):
        p = _scalar(MODEL3, d, kL[i], n[i], 0.0, 0.2, digits=30)
        assert _rel(res.test_error[i], p.test_error) < 1e-9
        assert _rel(res.effective_ridge[i], p.effective_ridge) < 1e-9 or res.effective_ridge[i] == 0


def test_large_ridge_and_few_samples_give_var_y():
    noise = 0.3
    res = solve_batch(MODEL3, np.array([1200.0, 1e-6]), np.array([1e12, 1e-3]), noise)
    # Var y = Var f*(g) + Delta = 1 + Delta for the linear target
    assert res.test_error[0] == pytest.approx(1 + noise, rel=1e-9)
    assert res.test_error[1] == pytest.approx(1 + noise, rel=1e-6)


def test_even_activation_restarts_the_chain_and_erases_the_signal():
    """``|u|`` has ``mu1 = 0``: the last features carry nothing of the teacher, so the readout regresses
    pure noise of variance ``1 + Delta``.  No readout beats predicting 0 (error ``1 + Delta``), and
    least squares on ``k`` such features with ``n > k`` samples has the classical error
    ``(1 + Delta) n / (n - k)``, whatever the features' covariance."""
    model = DeepRF(400, (800, 600), ("tanh", "abs"), "none")
    n = np.array([300.0, 900.0, 300.0])
    lam = np.array([1e-2, 0.0, 0.0])
    res = solve_batch(model, n, lam, 0.1)
    for i in range(3):
        p = predict(model, n[i], lam[i], 0.1)
        assert _rel(res.test_error[i], p.test_error) < 1e-9
        assert p.test_error >= 1.1 * (1 - 1e-12)
    assert _rel(res.test_error[1], 1.1 * 900 / (900 - 600)) < 1e-9


def test_broadcasting_shape_and_input_dim_lanes():
    n = np.linspace(200, 3000, 7)[None, :]
    d = np.array([500.0, 1000.0, 2000.0])[:, None]
    res = solve_batch(MODEL3, n, 1e-2, 0.0, input_dim=d)
    assert res.shape == (3, 7)
    for i in range(3):
        m = DeepRF(float(d[i, 0]), MODEL3.widths, MODEL3.activations, MODEL3.quantizers)
        p = predict(m, float(n[0, 4]), 1e-2)
        assert _rel(res.test_error[i, 4], p.test_error) < 1e-9


def test_only_ratios_matter():
    a = solve_batch(MODEL3, 1200.0, 1e-3, 0.1)
    scaled = DeepRF(10.0, (20.0, 15.0, 10.0), MODEL3.activations, MODEL3.quantizers)
    b = solve_batch(scaled, 12.0, 1e-3, 0.1)
    assert _rel(a.test_error, b.test_error) < 1e-12


# ------------------------------------------------------------ failure handling


def test_non_converged_lanes_are_nan_and_counted():
    n = np.linspace(200, 3000, 50)
    with pytest.warns(NonConvergenceWarning, match=r"\d+ of 50 lane"):
        res = solve_batch(MODEL3, n, 1e-3, 0.0, max_iter=2)
    assert res.n_failed > 0
    assert np.isnan(res.test_error[~res.converged]).all()
    assert np.isfinite(res.test_error[res.converged]).all()


def test_ill_conditioned_lanes_use_mpmath_or_nan():
    n = np.array([1200.0, 1200.0])
    lam = np.array([1e-9, 1e-2])
    res = solve_batch(MODEL3, n, lam, 0.0)
    assert res.fallback[0] and not res.fallback[1]
    p = predict(MODEL3, 1200, 1e-9, digits=30)
    assert _rel(res.test_error[0], p.test_error) < 1e-9
    assert _rel(res.train_error[0], p.train_error) < 1e-9
    with pytest.warns(NonConvergenceWarning):
        res2 = solve_batch(MODEL3, n, lam, 0.0, fallback="none")
    assert np.isnan(res2.test_error[0]) and res2.n_failed == 1


def test_bad_inputs_are_input_errors():
    with pytest.raises(InputError, match="ridge"):
        solve_batch(MODEL3, 100.0, -1.0)
    with pytest.raises(InputError, match="samples"):
        solve_batch(MODEL3, np.array([1.0, np.nan]))
    with pytest.raises(InputError, match="widths"):
        solve_batch(MODEL3, 100.0, widths=(1.0, 2.0))
    with pytest.raises(InputError, match="loss"):
        solve_batch(MODEL3, 100.0, loss="hinge-not-registered")


# ------------------------------------------------------------ optimal ridge


def test_optimal_ridge_matches_scalar_search():
    rng = np.random.default_rng(3)
    d = 1000.0
    n = rng.uniform(0.1, 4, 8) * d
    kL = rng.uniform(0.1, 4, 8) * d
    res = optimal_ridge_batch(MODEL3, n, 0.2, widths=(2000.0, 1500.0, kL))
    assert res.n_failed == 0
    for i in range(8):
        lam, p = optimal_ridge(MODEL3.with_widths((2000, 1500, kL[i])), n[i], 0.2)
        assert _rel(res.test_error[i], p.test_error) < 1e-9
        if lam == 0:
            assert res.ridge[i] == 0
        else:
            assert _rel(res.ridge[i], lam) < 1e-3
        # no ridge in a coarse scan does better
        scan = solve_batch(MODEL3.with_widths((2000, 1500, kL[i])), n[i], np.geomspace(1e-6, 1e3, 60), 0.2)
        assert res.test_error[i] <= scan.test_error.min() * (1 + 1e-12)


def _linear_layer_error(d, k, n, lam):
    """Noiseless ridge on z = W x / sqrt(d) (one linear layer), from the Marchenko-Pastur law alone.

    ``A = F^T F`` (``d x d``) has the MP spectrum of ratio ``g = d/k`` scaled by ``c = k/d``; with
    ``m_B`` its Stieltjes transform, ``df1(kap) = d - kap (d/c) m_B(-kap/c)``, ``s = df1/d`` and
    ``E = (1 - (s - kap s')) / (1 - df2/n)`` where ``kap`` solves ``lam = kap (1 - df1/n)``.
    """
    from scipy.optimize import brentq

    g, c = d / k, k / d

    def m_b(z):  # z < 0: the positive root of g z m^2 - (1 - g - z) m + 1 = 0
        b = -(1 - g - z)
        disc = math.sqrt(b * b - 4 * g * z)
        return max(r for r in ((-b + disc) / (2 * g * z), (-b - disc) / (2 * g * z)) if r > 0)

    def df1(kap):
        return d - kap * (d / c) * m_b(-kap / c)

    kap = brentq(lambda x: x * (1 - df1(x) / n) - lam, 1e-12, 1e6, xtol=1e-15, rtol=1e-14)
    h = 1e-5 * kap
    ddf1 = (df1(kap + h) - df1(kap - h)) / (2 * h)
    df2 = df1(kap) + kap * ddf1
    return (1 - (df1(kap) / d - kap * ddf1 / d)) / (1 - df2 / n)


def test_optimal_ridge_of_a_linear_layer_matches_the_marchenko_pastur_route():
    """Optimal ridge and error of one noiseless linear layer against an independent MP route and optimiser."""
    from scipy.optimize import minimize_scalar

    model = DeepRF(500, (1500,), ("linear",), "none")
    samples = np.array([200.0, 400.0])
    res = optimal_ridge_batch(model, samples, 0.0)
    for i, n in enumerate(samples):
        best = minimize_scalar(
            lambda t, n=n: _linear_layer_error(500, 1500, n, 10.0**t),
            bounds=(-4, 1),
            method="bounded",
            options={"xatol": 1e-7},
        )
        assert _rel(res.test_error[i], best.fun) < 1e-7
        assert _rel(res.ridge[i], 10.0**best.x) < 1e-3
        # the optimum is a positive ridge that beats the minimum-norm interpolator
        assert res.ridge[i] > 1e-3 and res.test_error[i] < float(predict(model, n, 0).test_error) * (1 - 1e-4)


# ------------------------------------------------------------ the loss seam


def test_registered_loss_receives_the_solved_state():
    def margin(st):
        return {"test_error": st.df2 / st.samples, "train_error": st.kappa}

    LOSSES["test-margin"] = margin  # a loss of the same fixed point, selected by name
    try:
        res = solve_batch(MODEL3, np.array([800.0, 2400.0]), 1e-2, loss="test-margin")
        ref = solve_batch(MODEL3, np.array([800.0, 2400.0]), 1e-2)
        assert np.allclose(res.test_error, ref.df2 / np.array([800.0, 2400.0]), rtol=1e-14)
        assert np.allclose(res.train_error, ref.effective_ridge, rtol=1e-14)
    finally:
        LOSSES.pop("test-margin")


# ------------------------------------------------------------ double-double tier


def test_double_double_arithmetic_against_mpmath():
    from rfq_theory import _ddwalk as d

    rng = np.random.default_rng(4)
    a = (rng.uniform(-1e3, 1e3, 200), rng.uniform(-1e-14, 1e-14, 200))
    b = (rng.uniform(0.1, 1e3, 200), rng.uniform(-1e-15, 1e-15, 200))
    a = d.quick_two_sum(*a)
    b = d.quick_two_sum(*b)
    with mpmath.workdps(50):
        for op, ref in (
            (d.add, lambda x, y: x + y),
            (d.sub, lambda x, y: x - y),
            (d.mul, lambda x, y: x * y),
            (d.div, lambda x, y: x / y),
        ):
            hi, lo = op(a, b)
            for i in range(0, 200, 7):
                x = mpmath.mpf(a[0][i]) + mpmath.mpf(a[1][i])
                y = mpmath.mpf(b[0][i]) + mpmath.mpf(b[1][i])
                want = ref(x, y)
                got = mpmath.mpf(hi[i]) + mpmath.mpf(lo[i])
                assert abs(got - want) <= mpmath.mpf(2) ** -100 * abs(want), op.__name__


@pytest.mark.slow  # 30-digit solves of every lane (test_ill_conditioned_lanes_use_mpmath_or_nan stays fast)
def test_double_double_tier_matches_30_digit_mpmath_on_ill_conditioned_lanes():
    d = 1000.0
    kL = np.array([1500.0, 800.0, 1000.0, 1500.0, 2500.0, 600.0])
    n = np.array([2400.0, 2400.0, 3000.0, 1500.0 - 2.0**-12, 2500.0 + 2.0**-12, 3900.0])
    lam = np.array([1e-9, 3e-8, 1e-7, 0.0, 1e-10, 1e-12])
    noise = np.array([0.1, 0.0, 0.3, 0.2, 0.05, 0.0])
    res = solve_batch(MODEL3, n, lam, noise, widths=(2000.0, 1500.0, kL), fallback="dd")
    assert res.fallback.all() and res.double_double.all() and res.n_failed == 0
    for i in range(6):
        p = _scalar(MODEL3, d, kL[i], n[i], lam[i], noise[i], digits=30)
        assert _rel(res.test_error[i], p.test_error) < 1e-12
        if p.train_error != 0:
            assert _rel(res.train_error[i], p.train_error) < 1e-12
        assert _rel(res.effective_ridge[i], p.effective_ridge) < 1e-12


def test_chain_functionals_at_the_solution_satisfy_the_ridge_equation():
    from rfq_theory.batch import chain_functionals

    n = np.array([600.0, 1800.0, 3000.0])
    lam = np.array([1e-2, 1e-1, 1.0])
    res = solve_batch(MODEL3, n, lam, 0.0)
    cf = chain_functionals(MODEL3, res.kappa0)
    assert cf.valid.all()
    # lambda = kappa_L (1 - df1/n) at the solved kappa_0
    assert np.allclose(cf.kappa * (1 - cf.df1 / n), lam, rtol=1e-12)
    assert np.allclose(cf.df2, res.df2, rtol=1e-12)
    assert np.allclose(cf.s, 1 / (1 + res.kappa0), rtol=1e-15)
    assert np.allclose(cf.s_plus, cf.s + cf.kappa * cf.s_prime, rtol=1e-14)
