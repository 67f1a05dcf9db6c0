"""Reliability of the core: ill-conditioned points, tiny variances, hostile inputs, diagnostics."""

import time

import mpmath
import pytest
import sympy as sp

from rfq_theory import (
    DeepRF,
    InputError,
    OptimalRidge,
    Quantizer,
    coefficients,
    exact_coefficients,
    get_activation,
    get_quantizer,
    optimal_ridge,
    predict,
)

# ------------------------------------------------ near the interpolation threshold

THRESHOLD_MODEL = DeepRF(1000, (2000, 1500), ("tanh", "relu"))  # rank(Omega_L) = 1500


@pytest.mark.parametrize(
    "samples",
    [
        # 60-digit solves: slow (the fast subset checks the float path against mpmath in test_solver)
        pytest.param("1500.000000000001", marks=pytest.mark.slow),
        pytest.param("1500.00001", marks=pytest.mark.slow),
        pytest.param("1500.01", marks=pytest.mark.slow),
        pytest.param("1499.99", marks=pytest.mark.slow),
        pytest.param("1499.99999", marks=pytest.mark.slow),
        pytest.param("1499.999999999999", marks=pytest.mark.slow),
    ],
)
def test_both_paths_right_near_the_threshold(samples):
    ref = predict(THRESHOLD_MODEL, samples, 0, 0.1, digits=60)
    fast = predict(THRESHOLD_MODEL, samples, 0, 0.1)
    assert abs(fast.test_error - ref.test_error) <= 1e-13 * ref.test_error
    d15 = predict(THRESHOLD_MODEL, samples, 0, 0.1, digits=15)
    with mpmath.workdps(70):
        assert abs(d15.test_error - ref.test_error) <= mpmath.mpf(10) ** -14 * ref.test_error
    assert d15.working_digits >= 25 and fast.precision_fallback


def test_diagnostics_are_reported():
    p = predict(THRESHOLD_MODEL, 1200, 0.01, 0.1)
    assert p.converged and p.iterations > 0 and p.function_calls >= p.iterations
    assert p.working_digits == 16 and p.condition >= 1 and not p.precision_fallback
    q = predict(THRESHOLD_MODEL, 1200, 0.01, 0.1, digits=30)
    assert q.working_digits >= 40


# ------------------------------------------------ tiny variances: an independent Hermite-Taylor route

MPMATH_FORMS = {
    "tanh": mpmath.tanh,
    "erf": mpmath.erf,
    "sigmoid": lambda u: 1 / (1 + mpmath.exp(-u)),
    "gelu": lambda u: u * mpmath.ncdf(u),
    "silu": lambda u: u / (1 + mpmath.exp(-u)),
    "softplus": lambda u: mpmath.log(1 + mpmath.exp(u)),
    "sin": mpmath.sin,
    "cos": mpmath.cos,
}


def _hermite_taylor(fn, v, order=16):
    """mu0, mu1, mu_star^2 from numerical Taylor coefficients: E s^(k)(u) = sum_j s^(k+2j)(0) v^j / (2^j j!),
    mu_star^2 = sum_{k>=2} v^k (E s^(k))^2 / k!  (Hermite expansion)."""
    c = mpmath.taylor(fn, 0, 2 * order)
    d = [c[n] * mpmath.factorial(n) for n in range(2 * order + 1)]

    def e_deriv(k):
        return mpmath.fsum(d[k + 2 * j] * v**j / (2**j * mpmath.factorial(j)) for j in range((2 * order - k) // 2 + 1))

    star2 = mpmath.fsum(v**k * e_deriv(k) ** 2 / mpmath.factorial(k) for k in range(2, order))
    return e_deriv(0), e_deriv(1), star2


@pytest.mark.parametrize("name", sorted(MPMATH_FORMS))
@pytest.mark.parametrize(
    "v",
    # the fast subset keeps the most extreme variance; the others are slow
    [
        pytest.param("1e-4", marks=pytest.mark.slow),
        pytest.param("1e-12", marks=pytest.mark.slow),
        pytest.param("1e-24", marks=pytest.mark.slow),
        "1e-100",
    ],
)
def test_builtins_at_tiny_variance(name, v):
    t0 = time.time()
    c = coefficients(name, v)
    assert time.time() - t0 < 20
    with mpmath.workdps(80):
        vv = mpmath.mpf(v)
        m0, m1, star2 = _hermite_taylor(MPMATH_FORMS[name], vv)
        assert abs(c.mu0 - m0) <= mpmath.mpf(10) ** -14 * max(abs(m0), vv)
        assert abs(c.mu1 - m1) <= mpmath.mpf(10) ** -14 * abs(m1)
        assert abs(c.mu_star - mpmath.sqrt(star2)) <= mpmath.mpf(10) ** -13 * mpmath.sqrt(star2)


def test_tiny_variance_against_quadrature_of_the_expression():
    # sin's closed form against quadrature of the expression 'sin(u)' (another route)
    for v in ("1e-4", "1e-8"):
        a, b = coefficients("sin", v), coefficients("sin(u)", v)
        assert abs(a.mu_star - b.mu_star) <= 1e-13 * b.mu_star


def test_deep_model_with_tiny_variance_predicts():
    q = Quantizer.piecewise("tiny", [0], ["-1e-10", "1e-10"])
    p = predict(DeepRF(100, (150, 120), ("sin", "tanh"), ("none", q)), 90, 0.1, 0.1)
    # the second layer's features are 1e-10 times smaller than the first's, so the ridge 0.1 acts as an
    # infinite one: the readout predicts the mean and E_test = Var y = 1 + Delta (the large-ridge limit)
    assert p.test_error == pytest.approx(1.1, rel=1e-12) and p.train_error == pytest.approx(1.1, rel=1e-12)


# ------------------------------------------------ hostile inputs end fast with one clear error

HOSTILE_ACTIVATIONS = [
    "1e999999999*u",
    "leaky_relu:1e999999999",
    "((((9**64)**64)**64)**64)**64*u",
    "((u+1)**64)**64",
    "(((u+1)**64)**64)**64",
    "exp(exp(exp(u)))",
    "0**-1",
    "leaky_relu:1/0",
    "(lambda: 1)()",
    "(y := u)",
    "hermite:99999999999999",
]


@pytest.mark.parametrize("spec", HOSTILE_ACTIVATIONS)
def test_hostile_activations_fail_fast(spec):
    t0 = time.time()
    with pytest.raises(ValueError) as info:
        coefficients(spec, 1)
    assert time.time() - t0 < 5
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400 and "Fraction(" not in msg
    assert "unknown parameterised activation '(" not in msg


@pytest.mark.parametrize("spec", ["ternary:1e999999999", "uniform:3:1e999999999", "expr:1e999999999*g"])
def test_hostile_quantizers_fail_fast(spec):
    t0 = time.time()
    with pytest.raises(ValueError):
        get_quantizer(spec)
    assert time.time() - t0 < 5


@pytest.mark.parametrize("field", ["samples", "ridge", "input_dim", "variance"])
def test_huge_literals_fail_fast(field):
    t0 = time.time()
    with pytest.raises(ValueError, match="out of range"):
        if field == "input_dim":
            DeepRF("1e999999999", (100,), "tanh")
        elif field == "variance":
            coefficients("tanh", "1e999999999")
        else:
            args = {"samples": 100, "ridge": 0}
            args[field] = "1e999999999" if field == "samples" else "1e-999999999"
            predict(DeepRF(100, (100,), "tanh"), **args)
    assert time.time() - t0 < 5


def _kinked_closed_forms():
    """``(mu0, mu1, E f(u)^2)`` at ``u ~ N(0, 1)`` by hand (phi, Phi: the standard normal density and CDF)."""
    phi, Phi = mpmath.npdf, mpmath.ncdf
    return {
        # hardtanh: E[u f] = P(|u| < 1); E f^2 = E[u^2; |u| < 1] + P(|u| > 1)
        "Min(Max(u,-1),1)": (0, 2 * Phi(1) - 1, (2 * Phi(1) - 1 - 2 * phi(1)) + 2 * Phi(-1)),
        # clip to [0, 1]: E f = phi(0) - phi(1) + P(u > 1); E[u f] = P(0 < u < 1)
        "Min(Max(u,0),1)": (phi(0) - phi(1) + Phi(-1), Phi(1) - 0.5, (Phi(1) - 0.5 - phi(1)) + Phi(-1)),
        # a step at u = 1e100: every moment is P(u > 1e100), zero in double precision
        "Heaviside(u**3 - 1e300)": (0, 0, 0),
        # |u| up to a 1e-300 term
        "Abs(1e-300*u**4 + u)": (mpmath.sqrt(2 / mpmath.pi), 0, 1),
    }


@pytest.mark.parametrize(
    "spec", ["Min(Max(u,-1),1)", "Min(Max(u,0),1)", "Heaviside(u**3 - 1e300)", "Abs(1e-300*u**4 + u)"]
)
def test_kinked_activations_answer(spec):
    """Kinks, a step beyond any float and a term below any float: the coefficients by hand."""
    c = coefficients(spec, 1)
    with mpmath.workdps(30):
        mu0, mu1, second = _kinked_closed_forms()[spec]
        star = mpmath.sqrt(max(second - mu0**2 - mu1**2, 0))
        for got, want in ((c.mu0, mu0), (c.mu1, mu1), (c.second_moment, second), (c.mu_star, star)):
            assert abs(got - want) <= 1e-13 * max(1, abs(want)), (spec, got, want)


def test_hardtanh_against_closed_form():
    # E[min(max(u,-1),1) u] = P(|u| < 1) for u ~ N(0,1)
    c = coefficients("Min(Max(u,-1),1)", 1, 20)
    with mpmath.workdps(30):
        assert abs(c.mu1 - mpmath.erf(1 / mpmath.sqrt(2))) < mpmath.mpf(10) ** -19


def test_exploding_but_valid_expressions_are_quick():
    """(u+1)^64 at v = 1: mu1 = E[u (u+1)^64] = sum over odd k of C(64, k) k!! (Gaussian moments), an integer."""
    from math import comb, prod

    t0 = time.process_time()
    c = coefficients("(u+1)**64", 1)
    forms = exact_coefficients("(u+1)**64", 1)
    assert time.process_time() - t0 < 20
    exact = sum(comb(64, k) * prod(range(k, 0, -2)) for k in range(1, 65, 2))
    assert forms["mu1"] == exact
    assert abs(c.mu1 - exact) <= 1e-12 * exact


def test_tiny_literal_quantizer_is_not_zero():
    q = get_quantizer("expr:1e-300*g")
    with mpmath.workdps(30):
        assert abs(q.second_moment() - mpmath.mpf(10) ** -600) < mpmath.mpf(10) ** -614


def test_bad_variances_rejected():
    with pytest.raises(ValueError):
        exact_coefficients("relu", -1)
    with pytest.raises(ValueError):
        exact_coefficients("relu", 0)
    with pytest.raises(ValueError):
        coefficients("relu", 0)


# ------------------------------------------------ types and messages


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="activation must be a string"):
        get_activation(["tanh"])
    with pytest.raises(TypeError, match="widths must be"):
        DeepRF(100, None, "tanh")
    with pytest.raises(TypeError, match="quantizer must be"):
        get_quantizer(3)


def test_layer_count_message():
    with pytest.raises(InputError, match="must have 1 entry, got 2"):
        DeepRF(100, (100,), ("tanh", "relu"))


# ------------------------------------------------ models carry objects


def test_custom_quantizers_in_models():
    """User quantizers against hand-computed second moments, and a piecewise ternary against the built-in one."""
    pw = Quantizer.piecewise("my-ternary", [-0.5, 0.5], [-1, 0, 1])
    cu = Quantizer.custom("cube", sp.Symbol("u", real=True) ** 3)
    second = {  # E Q(g)^2 by hand
        "expr:sign(g)": 1,
        "expr:sign(g)*Min(abs(g),1)": _kinked_closed_forms()["Min(Max(u,-1),1)"][2],  # the same clip
        pw: 2 * mpmath.ncdf(-0.5),
        cu: 15,  # E g^6
    }
    for q, s2 in second.items():
        m = DeepRF(100, (200,), "tanh", q)
        assert abs(m.quantizer_objects[0].second_moment() - s2) < 1e-13 * s2
        assert m.quantizer_objects[0] is get_quantizer(q) or isinstance(q, Quantizer)
    # the user's piecewise ternary and the built-in ternary:0.5 are two implementations of one quantizer
    a = predict(DeepRF(100, (200,), "tanh", pw), 100, 0.01, 0.1, digits=20)
    b = predict(DeepRF(100, (200,), "tanh", "ternary:0.5"), 100, 0.01, 0.1, digits=20)
    assert abs(a.test_error - b.test_error) < 1e-18
    assert DeepRF(100, (200,), "tanh", "expr:sign(g)").quantizers == ("expr:sign(g)",)
    assert get_quantizer(get_quantizer("expr:sign(g)").spec).spec == "expr:sign(g)"
    assert DeepRF(100, (200,), "tanh", pw).with_widths((300,)).quantizer_objects[0] is pw


# ------------------------------------------------ optimal ridge on the search bound


def test_optimal_ridge_reports_a_boundary_optimum():
    res = optimal_ridge(DeepRF(100, (200,), "tanh"), 100, 0.1, "cos")
    assert isinstance(res, OptimalRidge)
    assert res.at_bound == "upper" and "upper search bound" in res.message
    inner = optimal_ridge(DeepRF(100, (200,), "tanh"), 300, 0.5)
    assert inner.at_bound is None and 0 < inner.ridge < 1e4
    lam, pred = inner
    assert lam == inner.ridge and pred is inner.prediction


def test_tiny_ridge_is_the_ridgeless_limit():
    """lambda = 1e-300 away from the threshold: the ridgeless equations (their own branch of the solver)
    give the same error to every printed digit, at 20 digits and in floats."""
    model = DeepRF(100, (200,), "tanh")
    with mpmath.workdps(30):
        tiny = predict(model, 300, "1e-300", 0.1, digits=20).test_error
        ridgeless = predict(model, 300, 0, 0.1, digits=20).test_error
        assert abs(tiny - ridgeless) <= mpmath.mpf(10) ** -19 * ridgeless
    assert predict(model, 300, 1e-300, 0.1).test_error == pytest.approx(float(ridgeless), rel=1e-13)


# ------------------------------------------------ property: literal limits agree with exact parsing

from fractions import Fraction  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rfq_theory.checks import MAX_DECIMAL_EXPONENT, to_mpf_exactly  # noqa: E402


@given(mant=st.integers(1, 999), exp=st.integers(-1200, 1200))
def test_literal_limit_is_exact(mant, exp):
    text = f"{mant}e{exp}"
    magnitude = exp + len(str(mant)) - 1
    if abs(magnitude) > MAX_DECIMAL_EXPONENT:
        with pytest.raises(ValueError, match="out of range"):
            to_mpf_exactly(text, "x", 30)
    else:
        got = to_mpf_exactly(text, "x", 30)
        frac = Fraction(text)
        with mpmath.workdps(40):
            assert abs(got - mpmath.mpf(frac.numerator) / frac.denominator) <= abs(got) * mpmath.mpf(10) ** -29


@pytest.mark.parametrize("spec", ["hermite:41", "hermite:x", "hermite:-1"])
def test_hermite_degree_message(spec):
    with pytest.raises(ValueError, match="hermite degree"):
        get_activation(spec)
