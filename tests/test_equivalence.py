"""Layer propagation (docs/theory.md, section 2)."""

import mpmath
import pytest
import sympy as sp

from rfq_theory import coefficients, propagate, propagate_exact
from rfq_theory.checks import InputError


def test_propagation_follows_the_recursion():
    layers = propagate(["tanh", "relu", "erf"], ["sign", "sign-scaled", "ternary:0.3"], 25)
    q_prev = mpmath.mpf(1)
    with mpmath.workdps(35):
        for lc in layers:
            assert abs(lc.variance - lc.s2 * q_prev) < mpmath.mpf(10) ** -25
            c = coefficients(lc.activation, lc.variance, 25)
            assert abs(lc.mu1 - c.mu1) < mpmath.mpf(10) ** -24
            assert abs(lc.kappa1 - mpmath.sqrt(lc.s2) * c.mu1) < mpmath.mpf(10) ** -24
            assert abs(lc.q - (c.second_moment - c.mu0**2)) < mpmath.mpf(10) ** -24
            q_prev = lc.q


def test_scaled_sign_is_full_precision_with_rescaled_input():
    """sign-scaled layer == full-precision layer whose activation sees s u, s^2 = 2/pi."""
    scaled = propagate(["tanh"], "sign-scaled", 25)[0]
    rescaled = coefficients("tanh(sqrt(2/pi)*u)", 1, 25)
    with mpmath.workdps(30):
        assert abs(scaled.kappa1 - rescaled.mu1) < mpmath.mpf(10) ** -22
        assert abs(scaled.kappa_star - rescaled.mu_star) < mpmath.mpf(10) ** -22


def test_exact_propagation_matches_numeric():
    exact = propagate_exact(["relu", "erf"], "sign-scaled")
    numeric = propagate(["relu", "erf"], "sign-scaled", 30)
    for e, n in zip(exact, numeric):
        for field in ("variance", "mu0", "mu1", "mu_star", "kappa1"):
            with mpmath.workdps(40):
                assert abs(mpmath.mpf(sp.N(e[field], 40)) - getattr(n, field)) < mpmath.mpf(10) ** -28
        assert n.exact


def test_layer_count_mismatch():
    with pytest.raises(InputError, match="quantizers"):
        propagate(["tanh", "relu"], ["sign", "none", "sign"])
