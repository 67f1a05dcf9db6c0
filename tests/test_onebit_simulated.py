"""The one-bit theorem and the theory's numbers, checked on simulated networks.

``sign`` has ``E sign(g) = 0`` and ``E sign(g)^2 = 1``, so in the theory a
one-bit layer *is* its full-precision twin (``docs/theory.md``, section 2).
That identity is checked once, on the quantizer moments.  Everything else
here simulates real networks with this file's own NumPy code (independent
of ``validation``): paired draws use the same Gaussian ``W`` as ``W`` and as
``sign(W)``; the comparisons use :mod:`rfq_theory.testing` (the project's
rule), and each shows that it has the power to see an error in the
prediction: 2 % for the ridge test error, 6 % for the classification error
of the convex losses, 3 % for the first moment of the kernel spectrum.
"""

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import norm

from rfq_theory import DeepRF, get_quantizer, predict, predict_glm
from rfq_theory.spectra import cdf, layer_spectrum
from rfq_theory.testing import (
    TheoryMismatch,
    assert_binary_weights,
    assert_matches_theory,
    assert_one_bit_equivalent,
)

# --- the identity, once -----------------------------------------------------------------------


def test_quantizer_moments_against_direct_integration():
    """``E Q(g)`` and ``E Q(g)^2`` by quadrature of the applied quantizer; sign has exactly 1."""
    for spec, second in [
        ("none", 1.0),
        ("sign", 1.0),
        ("sign-scaled", 2 / math.pi),
        ("ternary:0.5", 2 * norm.sf(0.5)),
        ("uniform:2", None),
    ]:
        q = get_quantizer(spec)
        f = lambda g, k, q=q: float(q.apply(np.array([g]))[0]) ** k * norm.pdf(g)
        pts = [-1.0, -0.5, 0.0, 0.5, 1.0]
        mean = integrate.quad(f, -12, 12, args=(1,), points=pts, limit=200)[0]
        m2 = integrate.quad(f, -12, 12, args=(2,), points=pts, limit=200)[0]
        assert abs(mean) < 1e-10, spec
        assert float(q.second_moment()) == pytest.approx(m2, rel=1e-9), spec
        if second is not None:
            assert m2 == pytest.approx(second, rel=1e-9), spec
    assert get_quantizer("sign").exact_second_moment == 1  # exactly, so every coefficient is unchanged
    g = np.random.default_rng(0).standard_normal(1000)
    assert np.array_equal(get_quantizer("sign").apply(g) ** 2, np.ones(1000))


# --- the simulator (this file's own) ----------------------------------------------------------


def _weights(sizes, rng):
    return [rng.standard_normal((sizes[l + 1], sizes[l])) for l in range(len(sizes) - 1)]


def _features(model, weights, x):
    """``z_l = sigma_l(W_l z_{l-1} / sqrt(k_{l-1})) - mu0_l``, rows of ``x`` are inputs."""
    z = x
    for W, act, lc in zip(weights, model.activation_objects, model.layers()):
        z = act.numpy(z @ W.T / math.sqrt(W.shape[1])) - float(lc.mu0)
    return z


def _sizes(model):
    return (int(model.input_dim),) + tuple(int(k) for k in model.widths)


def _paired(model, draws, one_draw, seed):
    """Per-draw values of ``one_draw(weights, rng)`` for ``W`` and ``sign(W)`` on the same data."""
    full, onebit = [], []
    for t in range(draws):
        W = _weights(_sizes(model), np.random.default_rng([seed, t, 0]))
        signs = [np.sign(w) for w in W]
        assert_binary_weights(signs)
        full.append(one_draw(W, np.random.default_rng([seed, t, 1])))
        onebit.append(one_draw(signs, np.random.default_rng([seed, t, 1])))
    return np.array(full), np.array(onebit)


def _check_power(values, prediction, model, relative, quantity="test_error"):
    """The same draws must fail against the prediction moved by ``relative``."""
    moved = float(getattr(prediction, quantity)) * (1 + relative)
    with pytest.raises(TheoryMismatch):
        assert_matches_theory(values, moved, sizes=_sizes(model) + (prediction.samples,))


# --- ridge ------------------------------------------------------------------------------------

RIDGE_MODEL = DeepRF(250, (500, 375), ("relu", "tanh"), "sign")
RIDGE_N, RIDGE_LAMBDA, RIDGE_NOISE, RIDGE_DRAWS = 1000, 0.2, 0.0, 16


@pytest.fixture(scope="module")
def ridge_draws():
    d, n, lam = 250, RIDGE_N, RIDGE_LAMBDA
    model = RIDGE_MODEL.with_quantizers("none")

    def one_draw(W, rng):
        theta = rng.standard_normal((d, d)) / math.sqrt(d)  # d teachers at once
        x = rng.standard_normal((n, d))
        y = x @ theta + math.sqrt(RIDGE_NOISE) * rng.standard_normal((n, d))
        z = _features(model, W, x)
        w = np.linalg.solve(z.T @ z + n * lam * np.eye(z.shape[1]), z.T @ y)
        train = float(np.mean((y - z @ w) ** 2))
        xt = rng.standard_normal((1000, d))
        return float(np.mean((xt @ theta - _features(model, W, xt) @ w) ** 2)) + RIDGE_NOISE, train

    return _paired(model, RIDGE_DRAWS, one_draw, seed=11)


def test_ridge_one_bit_network_matches_the_theory(ridge_draws):
    full, onebit = ridge_draws[0][:, 0], ridge_draws[1][:, 0]
    p = predict(RIDGE_MODEL, RIDGE_N, RIDGE_LAMBDA, RIDGE_NOISE)
    r = assert_matches_theory(onebit, p, model=RIDGE_MODEL)
    assert_matches_theory(full, p, model=RIDGE_MODEL)
    assert_one_bit_equivalent(full, onebit, model=RIDGE_MODEL, samples=RIDGE_N)
    # power: the rule's tolerance is below 2 % of the prediction, and a 2 % error is caught
    assert r["tolerance"] < 0.02 * r["predicted"], r
    _check_power(onebit, p, RIDGE_MODEL, 0.02)
    _check_power(onebit, p, RIDGE_MODEL, -0.02)


def test_ridge_train_error_matches_the_theory(ridge_draws):
    """E_train = (lambda / kappa)^2 E_test, checked on the simulated training sets."""
    full, onebit = ridge_draws[0][:, 1], ridge_draws[1][:, 1]
    p = predict(RIDGE_MODEL, RIDGE_N, RIDGE_LAMBDA, RIDGE_NOISE)
    r = assert_matches_theory(onebit, p, "train_error", model=RIDGE_MODEL)
    assert_matches_theory(full, p, "train_error", model=RIDGE_MODEL)
    assert r["tolerance"] < 0.03 * r["predicted"], r
    _check_power(onebit, p, RIDGE_MODEL, 0.03, "train_error")


def test_ridge_sign_scaled_twin_is_not_equivalent(ridge_draws):
    """A simulator that keeps Gaussian weights where sqrt(2/pi) sign(W) was asked for is caught."""
    full = ridge_draws[0][:, 0]
    p_scaled = predict(RIDGE_MODEL.with_quantizers("sign-scaled"), RIDGE_N, RIDGE_LAMBDA, RIDGE_NOISE)
    p_sign = predict(RIDGE_MODEL, RIDGE_N, RIDGE_LAMBDA, RIDGE_NOISE)
    assert abs(p_scaled.test_error / p_sign.test_error - 1) > 0.02
    with pytest.raises(TheoryMismatch):
        assert_matches_theory(full, p_scaled, model=RIDGE_MODEL)


# --- convex losses on sign labels -------------------------------------------------------------

GLM_MODEL = DeepRF(100, (200,), ("tanh",), "sign")
GLM_N, GLM_LAMBDA, GLM_NOISE, GLM_TARGETS = 300, 0.05, 0.1, 8


def _fit(loss, z, y, lam):
    """``argmin (1/n) sum loss(y, z w) + lam ||w||^2`` for every column of ``y`` (one weight column each)."""
    n, p = z.shape
    if loss == "square":
        return np.linalg.solve(z.T @ z + n * lam * np.eye(p), z.T @ y)
    if loss == "logistic":

        def fg(wflat):  # the columns' objectives are separable: their sum is minimised jointly
            w = wflat.reshape(p, -1)
            u = y * (z @ w)
            val = np.logaddexp(0, -u).sum() / n + lam * (w * w).sum()
            grad = z.T @ (-y * np.exp(-np.logaddexp(0, u))) / n + 2 * lam * w
            return val, grad.ravel()

        res = optimize.minimize(
            fg, np.zeros(p * y.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": 1e-8, "maxiter": 5000}
        )
        return res.x.reshape(p, -1)
    from sklearn.svm import LinearSVC

    C = 1.0 / (2.0 * lam * n)
    cols = [
        LinearSVC(C=C, loss="hinge", dual=True, fit_intercept=False, tol=1e-8, max_iter=200000)
        .fit(z, y[:, j])
        .coef_.ravel()
        for j in range(y.shape[1])
    ]
    return np.stack(cols, axis=1)


def _glm_draws(loss):
    d, n = 100, GLM_N
    model = GLM_MODEL.with_quantizers("none")

    def one_draw(W, rng):
        theta = rng.standard_normal((d, GLM_TARGETS)) / math.sqrt(d)
        x = rng.standard_normal((n, d))
        y = np.sign(x @ theta + math.sqrt(GLM_NOISE) * rng.standard_normal((n, GLM_TARGETS)))
        w = _fit(loss, _features(model, W, x), y, GLM_LAMBDA)
        xt = rng.standard_normal((10000, d))
        yt = np.sign(xt @ theta + math.sqrt(GLM_NOISE) * rng.standard_normal((10000, GLM_TARGETS)))
        return float(np.mean(np.sign(_features(model, W, xt) @ w) != yt))

    return _paired(model, 8, one_draw, seed=23)


@pytest.mark.parametrize("loss", ["logistic", "hinge", "square"])
def test_convex_loss_one_bit_network_matches_the_theory(loss):
    full, onebit = _glm_draws(loss)
    p = predict_glm(GLM_MODEL, GLM_N, GLM_LAMBDA, GLM_NOISE, labels="sign", loss=loss)
    r = assert_matches_theory(onebit, p, model=GLM_MODEL)
    assert_matches_theory(full, p, model=GLM_MODEL)
    assert_one_bit_equivalent(full, onebit, model=GLM_MODEL, samples=GLM_N)
    assert r["tolerance"] < 0.06 * r["predicted"], r
    _check_power(onebit, p, GLM_MODEL, 0.06)
    _check_power(onebit, p, GLM_MODEL, -0.06)


# --- spectrum of the conjugate kernel -----------------------------------------------------------

SPEC_MODEL = DeepRF(200, (400, 300), ("tanh", "relu"), "sign")
SPEC_N = 240  # below k_L = 300: a full-rank kernel, no atom at 0


def _ks(sorted_values, spec):
    """Kolmogorov-Smirnov distance between the empirical distribution and ``cdf(spec)``."""
    F = np.asarray(cdf(spec, sorted_values), dtype=float)
    n = sorted_values.size
    return float(max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n)))


def test_conjugate_kernel_spectrum_of_one_bit_networks():
    """Eigenvalues of ``K = Z Z^T / k_L`` of real features vs the limiting moments and CDF."""
    model = SPEC_MODEL.with_quantizers("none")
    theory = layer_spectrum(SPEC_MODEL, SPEC_MODEL.depth, samples=SPEC_N)

    def one_draw(W, rng):
        z = _features(model, W, rng.standard_normal((SPEC_N, 200)))
        e = np.linalg.eigvalsh(z @ z.T / z.shape[1])
        return e

    full, onebit = _paired(model, 8, one_draw, seed=31)
    for j in range(4):
        mj_full = [float(np.mean(e ** (j + 1))) for e in full]
        mj_one = [float(np.mean(e ** (j + 1))) for e in onebit]
        r = assert_matches_theory(mj_one, float(theory.moments[j]), sizes=_sizes(SPEC_MODEL) + (SPEC_N,))
        assert_matches_theory(mj_full, float(theory.moments[j]), sizes=_sizes(SPEC_MODEL) + (SPEC_N,))
        assert_one_bit_equivalent(mj_full, mj_one, sizes=_sizes(SPEC_MODEL) + (SPEC_N,))
        assert r["tolerance"] < (0.03, 0.06, 0.1, 0.2)[j] * r["predicted"], (j, r)
    # KS distance of the pooled one-bit eigenvalues from the limiting CDF, and from a wrong one
    pooled = np.sort(np.concatenate(list(onebit)))
    scaled = layer_spectrum(SPEC_MODEL.with_quantizers("sign-scaled"), SPEC_MODEL.depth, samples=SPEC_N)
    assert _ks(pooled, theory) < 0.03, _ks(pooled, theory)
    assert _ks(pooled, scaled) > 0.1, _ks(pooled, scaled)
    # a Gaussian-weight simulator run on the sign-scaled model is caught
    with pytest.raises(TheoryMismatch):
        assert_matches_theory([float(np.mean(e)) for e in full], float(scaled.moments[0]), sizes=(200, 300))
