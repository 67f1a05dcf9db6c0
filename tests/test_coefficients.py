"""Gaussian-equivalent coefficients: closed forms vs quadrature, identities, reference values."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_theory import coefficients, exact_coefficients, get_activation
from rfq_theory.activation_coefficients import NotExactError
from rfq_theory.activations import Activation, ActivationError
from rfq_theory.gaussian import GaussianIntegralError

CLOSED_FORM = [
    "linear",
    "relu",
    "leaky_relu:0.1",
    "leaky_relu:-0.5",
    "abs",
    "sign",
    "erf",
    "gelu",
    "sin",
    "cos",
    "quadratic",
    "cubic",
    "hermite:3",
    "hermite:6",
]
ALL_BUILTINS = CLOSED_FORM + ["tanh", "sigmoid", "silu", "softplus"]


def quadrature_only(name):
    """The same activation with its closed forms removed (forces quadrature)."""
    act = get_activation(name)
    return Activation(name + "#quad", act.expr, act.numpy, None, act.kinks or (0.0,))


#: the fast subset checks one activation of each kind of closed form (piecewise linear, the step,
#: erf-type, a product with the CDF, a polynomial); the full suite every closed form
FAST_CLOSED_FORMS = {"relu", "leaky_relu:-0.5", "sign", "erf", "gelu", "hermite:6"}


@pytest.mark.parametrize(
    "name", [n if n in FAST_CLOSED_FORMS else pytest.param(n, marks=pytest.mark.slow) for n in CLOSED_FORM]
)
@pytest.mark.parametrize("variance", ["0.3", pytest.param("2", marks=pytest.mark.slow)])
def test_closed_forms_match_quadrature_30_digits(name, variance):
    exact = coefficients(name, variance, 30)
    quad = coefficients(quadrature_only(name), variance, 30)
    assert exact.exact and not quad.exact
    tol = mpmath.mpf(10) ** -29
    with mpmath.workdps(40):
        for field in ("mu0", "mu1", "mu_star", "second_moment"):
            a, b = getattr(exact, field), getattr(quad, field)
            assert abs(a - b) <= tol * max(1, abs(a)), (field, a, b)


def test_gelu_mu0_mu1_closed_forms_exist():
    forms = exact_coefficients("gelu")
    v = sp.Symbol("v", positive=True)
    assert sp.simplify(forms["mu1"] - sp.Rational(1, 2)) == 0
    assert sp.simplify(forms["mu0"].subs(v, 1) - 1 / sp.sqrt(4 * sp.pi)) == 0


def test_notes_closed_forms():
    v = sp.Symbol("v", positive=True)
    relu = exact_coefficients("relu", v)
    assert sp.simplify(relu["mu0"] - sp.sqrt(v / (2 * sp.pi))) == 0
    assert sp.simplify(relu["mu_star"] ** 2 - v * (sp.pi - 2) / (4 * sp.pi)) == 0
    sign = exact_coefficients("sign", v)
    assert sp.simplify(sign["mu1"] - sp.sqrt(2 / (sp.pi * v))) == 0
    assert sp.simplify(sign["mu_star"] ** 2 - (1 - 2 / sp.pi)) == 0
    erf = exact_coefficients("erf", v)
    assert sp.simplify(erf["mu1"] - 2 / sp.sqrt(sp.pi * (1 + 2 * v))) == 0


def test_reference_coefficients(reference):
    for case in reference["coefficients"]:
        c = coefficients(case["activation"], case["variance"], 30)
        with mpmath.workdps(40):
            for field in ("mu0", "mu1", "mu_star"):
                want = mpmath.mpf(case[field])
                assert abs(getattr(c, field) - want) <= mpmath.mpf(10) ** -27 * max(1, abs(want)), field


def test_no_closed_form_is_refused():
    with pytest.raises(NotExactError, match="tanh"):
        exact_coefficients("tanh")


@given(
    name=st.sampled_from(ALL_BUILTINS),
    variance=st.floats(min_value=0.01, max_value=20, allow_nan=False),
)
def test_coefficients_match_scipy_quadrature_of_the_numpy_function(name, variance):
    """mu0, mu1, mu_star against SciPy quadrature of the activation's NumPy code (an independent route).

    ``E sigma^2 = mu0^2 + mu1^2 v + mu_star^2`` is how mu_star is defined, so the identity is
    checked through the three independently integrated moments, not on the returned numbers.
    """
    from scipy import integrate

    act = get_activation(name)
    sd = math.sqrt(variance)

    def moment(f):
        # u = sd * t, t ~ N(0, 1); split at the kinks and at 0
        cuts = sorted({0.0, *(float(k) / sd for k in act.kinks)})
        edges = [-40.0, *cuts, 40.0]
        total = 0.0
        for a, b in zip(edges, edges[1:]):
            g = lambda t: f(sd * t) * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: B023
            total += integrate.quad(g, a, b, epsabs=1e-13, epsrel=1e-12, limit=400)[0]
        return total

    sig = lambda u: float(act.numpy(np.array([u]))[0])
    e1, eu, e2 = moment(sig), moment(lambda u: u * sig(u)), moment(lambda u: sig(u) ** 2)
    mu1 = eu / variance
    mu_star = math.sqrt(max(0.0, e2 - e1**2 - mu1**2 * variance))
    c = coefficients(name, variance, 20)
    tol = 1e-8 * max(1.0, abs(e2))
    assert abs(float(c.mu0) - e1) < tol and abs(float(c.mu1) - mu1) < tol / variance
    assert abs(float(c.mu_star) ** 2 - mu_star**2) < tol and c.mu_star >= 0


@given(variance=st.floats(min_value=1e-3, max_value=1e3), scale=st.floats(min_value=0.1, max_value=10))
def test_relu_homogeneity(variance, scale):
    """ReLU: mu0 and mu_star scale exactly with sqrt(v); mu1 does not change."""
    a = coefficients("relu", variance, 25)
    b = coefficients("relu", variance * scale**2, 25)
    with mpmath.workdps(30):
        r = mpmath.sqrt(b.variance / a.variance)
        assert abs(b.mu0 - r * a.mu0) < mpmath.mpf(10) ** -22
        assert abs(b.mu_star - r * a.mu_star) < mpmath.mpf(10) ** -22
        assert b.mu1 == a.mu1


@settings(max_examples=8)  # each example expands a polynomial symbolically (about 0.6 s)
@given(
    coeffs=st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=6),
    variance=st.sampled_from(["1", "0.5", "3", "1.75"]),
)
def test_polynomial_coefficients_equal_hermite_expansion(coeffs, variance):
    """sigma(u) = sum_k c_k He_k(u / sqrt v): mu0 = c_0, mu1 sqrt(v) = c_1, mu_star^2 = sum_{k>=2} k! c_k^2."""
    u, t = sp.symbols("u t", real=True)
    poly = sum(c * u**k for k, c in enumerate(coeffs))
    text = " + ".join(f"({c})*u**{k}" for k, c in enumerate(coeffs))
    v = sp.Rational(variance)
    # expand poly(sqrt(v) t) in probabilists' Hermite polynomials by peeling the leading term
    rest = sp.Poly(sp.expand(poly.subs(u, sp.sqrt(v) * t)), t)
    herm = {}
    while not rest.is_zero:
        k = rest.degree()
        c = rest.LC()
        herm[k] = c
        rest = rest - sp.Poly(c * sp.hermite_prob(k, t), t)
    mu0 = herm.get(0, 0)
    mu1 = herm.get(1, 0) / sp.sqrt(v)
    star2 = sum(sp.factorial(k) * c**2 for k, c in herm.items() if k >= 2)
    got = coefficients(text, variance, 30)
    assert got.exact
    with mpmath.workdps(40):
        assert abs(got.mu0 - mpmath.mpf(sp.N(mu0, 40))) < mpmath.mpf(10) ** -25
        assert abs(got.mu1 - mpmath.mpf(sp.N(mu1, 40))) < mpmath.mpf(10) ** -25
        assert abs(got.mu_star**2 - mpmath.mpf(sp.N(star2, 40))) < mpmath.mpf(10) ** -25 * max(1, float(star2))


@pytest.mark.parametrize("digits", [15, 50])
def test_quadrature_precision_agreement(digits):
    """tanh at 15 and 50 digits agree to 15 digits; the 50-digit value is stable at 60."""
    a = coefficients("tanh", "0.8", digits)
    b = coefficients("tanh", "0.8", 60)
    with mpmath.workdps(70):
        assert abs(a.mu1 - b.mu1) < mpmath.mpf(10) ** (-digits + 1)
        assert abs(a.mu_star - b.mu_star) < mpmath.mpf(10) ** (-digits + 1)


def test_numpy_implementations_match_expressions():
    u = np.linspace(-4, 4, 41)
    for name in ALL_BUILTINS:
        act = get_activation(name)
        ref = [float(act.mpmath()(mpmath.mpf(x))) for x in u]
        assert np.allclose(act(u), ref, rtol=1e-12, atol=1e-12), name


def test_user_expression_against_monte_carlo():
    c = coefficients("u*tanh(u)", "1.3", 15)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(2_000_000) * math.sqrt(1.3)
    f = x * np.tanh(x)
    se = f.std() / math.sqrt(len(f))
    assert abs(f.mean() - float(c.mu0)) < 5 * se


@pytest.mark.parametrize("text", ["exp(u**2)", "exp(u**4)", "1/u", "log(u)", "sqrt(u)"])
def test_infinite_or_undefined_moments_rejected(text):
    with pytest.raises(GaussianIntegralError):
        coefficients(text, 1)


def test_exp_square_is_fine_at_small_variance():
    """E exp(2 u^2) = 1 / sqrt(1 - 4v) is finite for v < 1/4."""
    c = coefficients("exp(u**2)", "0.1", 20)
    with mpmath.workdps(30):
        assert abs(c.second_moment - 1 / mpmath.sqrt(1 - 4 * mpmath.mpf("0.1"))) < mpmath.mpf(10) ** -18


@pytest.mark.parametrize("bad", ["relu2", "leaky_relu:abc", "hermite:-1", "hermite:1.5", "foo:1"])
def test_unknown_activations_rejected(bad):
    with pytest.raises(ActivationError):
        get_activation(bad)


@pytest.mark.parametrize("bad", [0, -1, "nan", "inf", "abc", float("nan")])
def test_bad_variance_rejected(bad):
    with pytest.raises(ValueError, match="variance"):
        coefficients("relu", bad)


@pytest.mark.parametrize("variance", ["1e-8", "1e-20"])
def test_tiny_mu_star_keeps_its_digits(variance):
    """tanh(u) = u - u^3/3 + ...: mu_star = sqrt(2/3) v^(3/2) (1 + O(v)), 30+ orders below E tanh^2."""
    c = coefficients("tanh", variance, 20)
    with mpmath.workdps(60):
        v = mpmath.mpf(variance)
        want = mpmath.sqrt(mpmath.mpf(2) / 3) * v**1.5
        assert abs(c.mu_star / want - 1) < 10 * v  # the O(v) correction
    assert coefficients("linear", "0.3", 30).mu_star == 0
    assert coefficients("2*u - 1", "5", 30).mu_star == 0


def test_high_degree_polynomial_closed_forms_are_fast_and_exact():
    """Degree-64 and Hermite-40 closed forms (expanded, not simplified: simplify took minutes) vs direct moments."""
    import math

    import sympy as sp

    from rfq_theory.activation_coefficients import closed_forms

    forms = closed_forms("(u+1)**64", variance=sp.Rational(1, 3))
    # E (u+1)^64 = sum_k C(64, 2k) (2k-1)!! v^k for u ~ N(0, v)
    direct = sum(math.comb(64, 2 * k) * sp.factorial2(2 * k - 1) * sp.Rational(1, 3) ** k for k in range(33))
    assert forms["mu0"] == direct
    # E u (u+1)^64 / v = sum_k C(64, 2k+1) (2k+1)!! v^k
    direct1 = sum(math.comb(64, 2 * k + 1) * sp.factorial2(2 * k + 1) * sp.Rational(1, 3) ** k for k in range(32))
    assert forms["mu1"] == direct1
    hermite = closed_forms("hermite:40")
    assert hermite["mu_star"] is not None and hermite["second_moment"].is_polynomial()
