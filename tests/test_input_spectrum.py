"""Structured inputs (x ~ N(0, Sigma), aligned teachers), checked against independent routes.

- ``Sigma = I`` in every spelling reproduces the isotropic numbers to every digit, for every teacher;
- one linear layer of huge width is ridge regression on ``x`` itself: the classical anisotropic ridge
  equations, solved here from scratch, give the same test error (ridge and ridgeless);
- the spread of the first layer's pre-activation variances against Gaussian weights drawn here;
- sign and Gaussian weights give the same prediction with ``Sigma != I``;
- the float path against 30 digits; bad spectra and teachers get one clear error.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from rfq_theory import DeepRF, predict
from rfq_theory.batch import solve_batch
from rfq_theory.checks import InputError
from rfq_theory.input_spectrum import input_spectrum, teacher_profile, variance_spread


def _classical_ridge(lams, beta2, n, lam, noise):
    """Test error of ridge on ``x ~ N(0, diag(lams))`` with ``y = beta.x/sqrt(d) + eps`` (unit signal variance).

    ``kappa (1 - sum lam_i/(lam_i + kappa) / n) = lam`` (or ``sum lam_i/(lam_i+kappa) = n`` without ridge),
    ``E = [kappa^2 sum t_i lam_i/(lam_i + kappa)^2 + noise] / (1 - sum lam_i^2/(lam_i + kappa)^2 / n)``.
    """
    t = beta2 / np.dot(beta2, lams)
    if lam == 0 and n > len(lams):  # least squares on d < n directions: no bias, noise inflated
        return noise / (1 - len(lams) / n)
    if lam > 0:

        def f(logk):
            k = math.exp(logk)
            return k * (1 - np.sum(lams / (lams + k)) / n) - lam
    else:

        def f(logk):
            k = math.exp(logk)
            return n - np.sum(lams / (lams + k))

    kappa = math.exp(brentq(f, -60, 60, xtol=1e-15, rtol=1e-15))
    df2 = np.sum(lams**2 / (lams + kappa) ** 2)
    bias = kappa**2 * np.sum(t * lams / (lams + kappa) ** 2)
    return (bias + noise) / (1 - df2 / n)


def test_structured_path_tends_to_the_isotropic_one_as_the_spread_vanishes():
    """Eigenvalues 1 +- eps (mean 1) take the structured code path; the error must approach the isotropic
    one (a separate code path) with a quadratic gap: (E_eps - E_iso) / eps^2 the same at eps and 4 eps."""
    d, model = 200, DeepRF(200, (300, 250), ("tanh", "relu"), "sign")
    iso = predict(model, 400, 0.02, 0.1).test_error
    gaps = []
    for eps in (1e-3, 4e-3):
        lams = np.where(np.arange(d) % 2 == 0, 1 + eps, 1 - eps)
        structured = DeepRF(d, (300, 250), ("tanh", "relu"), "sign", lams)
        assert structured.structured
        gaps.append((predict(structured, 400, 0.02, 0.1).test_error - iso) / eps**2)
    assert gaps[0] != 0 and abs(gaps[0]) < 10
    assert gaps[1] == pytest.approx(gaps[0], rel=1e-3)


@pytest.mark.parametrize("spec", ["identity", "power:0", "spiked:3:1"])
@pytest.mark.parametrize("teacher", ["flat", "power:1.5"])
def test_identity_spectrum_reproduces_isotropic_numbers_to_every_digit(spec, teacher):
    iso = DeepRF(300, (450, 200), ("tanh", "relu"), ("sign", "none"))
    same = DeepRF(300, (450, 200), ("tanh", "relu"), ("sign", "none"), spec, teacher)
    for digits in (None, 30):
        a = predict(iso, 500, "0.01", "0.1", digits=digits)
        b = predict(same, 500, "0.01", "0.1", digits=digits)
        assert a.test_error == b.test_error and a.train_error == b.train_error
    ones = DeepRF(300, 450, "tanh", "sign", np.ones(300), teacher)
    assert predict(ones, 500, 0.01).test_error == predict(DeepRF(300, 450, "tanh", "sign"), 500, 0.01).test_error


@pytest.mark.parametrize(
    "spec, teacher, n, ridge, noise",
    [
        ("power:0.5", "flat", 300, 0.05, 0.1),
        ("power:1.2", "power:1", 150, 0.01, 0.0),
        ("spiked:5:20", "power:0.5", 400, 0.2, 0.3),
        ("power:0.8", "power:2", 120, 0.0, 0.2),  # ridgeless, over-parameterized (n < d)
        ("power:0.8", "flat", 500, 0.0, 0.2),  # ridgeless, under-parameterized (n > d)
    ],
)
def test_one_wide_linear_layer_is_classical_anisotropic_ridge(spec, teacher, n, ridge, noise):
    d, ratio = 250, 1e9
    model = DeepRF(d, d * ratio, "linear", "none", spec, teacher)
    # ridge on z = F x with k_1 / d -> infinity is ridge on x with lambda d / k_1
    got = predict(model, n, ridge * ratio, noise).test_error
    lams = np.asarray(input_spectrum(spec).eigenvalues(d))
    beta2 = teacher_profile(teacher).squared_coefficients(lams)
    want = _classical_ridge(lams, beta2, n, ridge, noise)
    assert got == pytest.approx(want, rel=1e-6)


def test_variance_spread_matches_gaussian_weights_drawn_here():
    d = 400
    spec = input_spectrum("power:1.3")
    lams = np.asarray(spec.eigenvalues(d))
    W = np.random.default_rng(3).standard_normal((8000, d))
    v = (W**2) @ lams / d  # w^T Sigma w / d for diagonal Sigma
    assert np.mean(v) == pytest.approx(1.0, abs=0.02)
    assert variance_spread(spec, d) == pytest.approx(np.std(v) / np.mean(v), rel=0.03)
    # +-1 weights and an axis-aligned Sigma: w^T Sigma w / d = tr Sigma / d exactly
    S = np.sign(W[:50])
    assert np.allclose((S**2) @ lams / d, 1.0)


@pytest.mark.parametrize("digits", [None, pytest.param(30, marks=pytest.mark.slow)])
def test_scaled_sign_on_structured_inputs_is_full_precision_at_a_rescaled_ridge(digits):
    """ReLU layers are 1-homogeneous: sqrt(2/pi) sign(W) multiplies the features by c = (2/pi)^(L/2), so the
    structured model's error at ridge lambda is the full-precision one at lambda / c^2 (a derivation, not
    the solver's arithmetic: the two solves see different variances, coefficients and ridges)."""
    full = DeepRF(200, (300, 250), ("relu", "leaky_relu:0.2"), "none", "power:0.6", "power:1")
    scaled = full.with_quantizers("sign-scaled")
    c2 = (2 / np.pi) ** 2
    if digits is None:
        a, b = predict(scaled, 400, 0.02, 0.1), predict(full, 400, 0.02 / c2, 0.1)
        assert a.test_error == pytest.approx(b.test_error, rel=1e-12)
        assert a.test_error != pytest.approx(predict(full, 400, 0.02, 0.1).test_error, rel=1e-4)
        return
    import mpmath

    with mpmath.workdps(40):
        lam = mpmath.mpf("0.02")
        a = predict(scaled, 400, lam, "0.1", digits=digits)
        b = predict(full, 400, lam / (2 / mpmath.pi) ** 2, "0.1", digits=digits)
        assert abs(a.test_error - b.test_error) < mpmath.mpf(10) ** -27


def test_float_path_agrees_with_30_digits_and_lanes():
    model = DeepRF(500, (700, 300), ("tanh", "relu"), "sign", "power:0.9", "power:1.2")
    ns = np.array([100.0, 400.0, 2000.0])
    hi = [predict(model, n, "0.01", "0.05", digits=30).test_error for n in ns]
    lo = [predict(model, n, 0.01, 0.05).test_error for n in ns]
    lanes = solve_batch(model, ns, 0.01, 0.05).test_error
    assert np.allclose(lo, [float(h) for h in hi], rtol=1e-12, atol=0)
    assert np.allclose(lanes, [float(h) for h in hi], rtol=1e-10, atol=0)


@settings(deadline=None)  # examples from the profile: 10 in the fast subset, 25 in the full suite
@given(
    perm_seed=st.integers(0, 2**32 - 1),
    a=st.floats(0.1, 1.5),
    b=st.floats(0.0, 2.0),
)
def test_prediction_depends_on_eigenvalue_teacher_pairs_not_their_order(perm_seed, a, b):
    d = 60
    lams = np.arange(1, d + 1, dtype=float) ** (-a)
    lams /= lams.mean()  # tr Sigma / d = 1: every example shares the first layer's coefficients
    beta2 = np.arange(1, d + 1, dtype=float) ** (-b)
    perm = np.random.default_rng(perm_seed).permutation(d)
    m1 = DeepRF(d, 90, "tanh", "sign", lams, beta2)
    m2 = DeepRF(d, 90, "tanh", "sign", lams[perm], beta2[perm])
    assert predict(m1, 70, 0.05, 0.1).test_error == pytest.approx(predict(m2, 70, 0.05, 0.1).test_error, rel=1e-12)


def test_given_eigenvalues_set_the_first_layer_variance():
    # Sigma = 4 I is x' = 2 x: relu is homogeneous, so (with the ridge scaled by 4) the error of a one-layer
    # relu model equals the isotropic one; tanh is not, and sees the variance 4
    d = 100
    iso = DeepRF(d, 150, "relu", "none")
    four = DeepRF(d, 150, "relu", "none", np.full(d, 4.0))
    assert predict(four, 200, 0.04).test_error == pytest.approx(predict(iso, 200, 0.01).test_error, rel=1e-12)
    assert four.layers()[0].variance == 4
    tanh4 = DeepRF(d, 150, "tanh", "none", np.full(d, 4.0))
    from scipy.integrate import quad

    # mu1 = E[u tanh(u)] / 4 with u ~ N(0, 4)
    mu1 = quad(lambda u: u * np.tanh(u) * np.exp(-(u**2) / 8) / np.sqrt(8 * np.pi), -60, 60, epsabs=1e-14)[0] / 4
    assert float(tanh4.layers()[0].mu1) == pytest.approx(mu1, rel=1e-10)


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("power:-1", "exponent"),
        ("power:abc", "power:a"),
        ("spiked:500:3", "r v"),
        ("spiked:2.5:3", "whole number"),
        ("file:/nonexistent.npy", "no such file"),
        ("gauss", "input_spectrum must be"),
    ],
)
def test_bad_spectra_get_one_clear_line(spec, fragment):
    with pytest.raises(InputError, match=fragment):
        DeepRF(1000, 500, "tanh", "none", spec)


def test_bad_arrays_and_dimensions():
    with pytest.raises(InputError, match="must agree"):
        DeepRF(100, 50, "tanh", "none", np.ones(99) * 2)
    with pytest.raises(InputError, match="finite"):
        DeepRF(3, 5, "tanh", "none", [1.0, np.nan, 2.0])
    with pytest.raises(InputError, match=">= 0"):
        DeepRF(3, 5, "tanh", "none", [1.0, -1.0, 2.0])
    with pytest.raises(InputError, match="whole number"):
        DeepRF(10.5, 5, "tanh", "none", "power:1")
    with pytest.raises(InputError, match="Var g = 0"):
        DeepRF(3, 5, "tanh", "none", [1.0, 0.0, 2.0], [0.0, 1.0, 0.0])
    with pytest.raises(InputError, match="teacher has 2 values"):
        DeepRF(3, 5, "tanh", "none", [1.0, 3.0, 2.0], [1.0, 1.0])
    with pytest.raises(InputError, match="input_dim is fixed"):
        solve_batch(DeepRF(3, 5, "tanh", "none", [1.0, 3.0, 2.0]), 10, 0.1, input_dim=[3, 4])


def _realized_omega(model, seed):
    """``Omega_L`` of one drawn network on ``x ~ N(0, diag(lambda))`` (Gaussian weights)."""
    rng = np.random.default_rng(seed)
    sizes = [int(model.input_dim)] + [int(w) for w in model.widths]
    omega = np.diag(np.asarray(model.input_spectrum.eigenvalues(sizes[0])))
    for (k_prev, k), lc in zip(zip(sizes, sizes[1:]), model.layers()):
        F = rng.standard_normal((k, k_prev)) / math.sqrt(k_prev)
        omega = float(lc.kappa1) ** 2 * (F @ omega @ F.T) + float(lc.kappa_star) ** 2 * np.eye(k)
    return omega


@pytest.mark.slow
def test_layer_spectra_of_structured_inputs_match_drawn_matrices():
    from rfq_theory.spectra import spectral_moments, spectrum_chain, stieltjes

    model = DeepRF(600, (900, 720), ("tanh", "relu"), "none", "power:0.7")
    draws = [np.linalg.eigvalsh(_realized_omega(model, s)) for s in range(3)]
    moments = np.mean([[np.mean(ev**j) for j in range(1, 5)] for ev in draws], axis=0)
    theory = np.asarray(spectral_moments(spectrum_chain(model, 2)))
    # (the third and fourth moments are dominated by the few outliers that the top eigenvalues of Sigma
    # create; three draws at this size leave them 5-10% noisy, so only the first two are compared)
    assert np.allclose(theory[:2], moments[:2], rtol=0.03)
    for z in (0.05 + 0.2j, 1.0 + 0.5j):
        realized = np.mean([np.mean(1 / (ev - z)) for ev in draws])
        got = complex(stieltjes(model, z, layer=2, digits=20))
        assert abs(got - realized) <= 0.01 * abs(realized)
    # an isotropic chain would miss the moments by far more than the tolerance
    iso = np.asarray(spectral_moments(spectrum_chain(DeepRF(600, (900, 720), ("tanh", "relu")), 2)))
    assert not np.allclose(iso[:2], moments[:2], rtol=0.1)
