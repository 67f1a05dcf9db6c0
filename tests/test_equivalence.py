"""Layer propagation (docs/theory.md, section 2)."""

import mpmath
import pytest
import sympy as sp

from rfq_theory import coefficients, propagate, propagate_exact
from rfq_theory.checks import InputError


def _gaussian_moments(f, v):
    """``E f(u)``, ``E u f(u)``, ``E f(u)^2`` for ``u ~ N(0, v)`` by SciPy quadrature (split at 0)."""
    import math

    from scipy import integrate

    def e(g):
        w = lambda t: g(math.sqrt(v) * t) * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)  # noqa: E731
        return sum(integrate.quad(w, a, b, epsabs=1e-14, epsrel=1e-13, limit=200)[0] for a, b in ((-40, 0), (0, 40)))

    return e(f), e(lambda u: u * f(u)), e(lambda u: f(u) ** 2)


def test_propagation_follows_the_recursion():
    """Each layer's variance is ``s^2 q_{l-1}`` and its coefficients are the Gaussian moments of its
    activation there: checked with SciPy quadrature of plain Python functions and hand-written ``s^2``."""
    import math

    acts = {"tanh": math.tanh, "relu": lambda u: max(u, 0.0), "erf": math.erf}
    s2 = {"sign": 1.0, "sign-scaled": 2 / math.pi, "ternary:0.3": math.erfc(0.3 / math.sqrt(2))}  # P(|g| > 0.3)
    quantizers = ["sign", "sign-scaled", "ternary:0.3"]
    layers = propagate(list(acts), quantizers, 25)
    q_prev = 1.0
    for lc, name, quantizer in zip(layers, acts, quantizers):
        assert float(lc.s2) == pytest.approx(s2[quantizer], rel=1e-14)
        v = s2[quantizer] * q_prev
        assert float(lc.variance) == pytest.approx(v, rel=1e-12)
        e0, eu, e2 = _gaussian_moments(acts[name], v)
        assert float(lc.mu1) == pytest.approx(eu / v, rel=1e-10)
        assert float(lc.kappa1) == pytest.approx(math.sqrt(s2[quantizer]) * eu / v, rel=1e-10)
        assert float(lc.q) == pytest.approx(e2 - e0**2, rel=1e-10)
        q_prev = e2 - e0**2


def test_scaled_sign_is_full_precision_with_rescaled_input():
    """sign-scaled layer == full-precision layer whose activation sees s u, s^2 = 2/pi."""
    scaled = propagate(["tanh"], "sign-scaled", 25)[0]
    rescaled = coefficients("tanh(sqrt(2/pi)*u)", 1, 25)
    with mpmath.workdps(30):
        assert abs(scaled.kappa1 - rescaled.mu1) < mpmath.mpf(10) ** -22
        assert abs(scaled.kappa_star - rescaled.mu_star) < mpmath.mpf(10) ** -22


def _relu_erf_by_hand():
    """relu then erf, both sign-scaled (s^2 = 2/pi), input variance 1, written out by hand.

    relu at variance v: mu0 = sqrt(v / (2 pi)), mu1 = 1/2, E relu^2 = v/2.  erf at variance v:
    mu0 = 0, mu1 = 2 / sqrt(pi (1 + 2v)) (Stein's lemma), E erf^2 = (2/pi) asin(2v / (1 + 2v)).
    The next layer's variance is s^2 (E sigma^2 - mu0^2); mu_star^2 = E sigma^2 - mu0^2 - v mu1^2.
    """
    pi, s2 = mpmath.pi, 2 / mpmath.pi
    v1 = s2
    relu = {"variance": v1, "mu0": mpmath.sqrt(v1 / (2 * pi)), "mu1": mpmath.mpf(1) / 2, "second": v1 / 2}
    v2 = s2 * (relu["second"] - relu["mu0"] ** 2)
    erf = {"variance": v2, "mu0": 0, "mu1": 2 / mpmath.sqrt(pi * (1 + 2 * v2))}
    erf["second"] = 2 / pi * mpmath.asin(2 * v2 / (1 + 2 * v2))
    for layer in (relu, erf):
        v = layer["variance"]
        layer["mu_star"] = mpmath.sqrt(layer["second"] - layer["mu0"] ** 2 - v * layer["mu1"] ** 2)
        layer["kappa1"] = mpmath.sqrt(s2) * layer["mu1"]
    return relu, erf


def test_exact_and_numeric_propagation_match_the_closed_forms_by_hand():
    exact = propagate_exact(["relu", "erf"], "sign-scaled")
    numeric = propagate(["relu", "erf"], "sign-scaled", 30)
    with mpmath.workdps(40):
        for e, n, hand in zip(exact, numeric, _relu_erf_by_hand()):
            for field in ("variance", "mu0", "mu1", "mu_star", "kappa1"):
                assert abs(mpmath.mpf(sp.N(e[field], 40)) - hand[field]) < mpmath.mpf(10) ** -35, field
                assert abs(getattr(n, field) - hand[field]) < mpmath.mpf(10) ** -28, field
            assert n.exact


def test_layer_count_mismatch():
    with pytest.raises(InputError, match="quantizers"):
        propagate(["tanh", "relu"], ["sign", "none", "sign"])
