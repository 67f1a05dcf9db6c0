"""Quantizers: s^2 against Monte Carlo, closed forms, rejection of non-centred ones."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from rfq_theory import Quantizer, get_quantizer
from rfq_theory.quantizers import QuantizerError

SPECS = [
    "none",
    "sign",
    "sign-scaled",
    "ternary:0.5",
    "ternary:1.2",
    "uniform:1",
    "uniform:2",
    "uniform:3:2.5",
    "uniform:4",
    "expr:g**3",
    "expr:sign(g)*Min(abs(g), 1)",
]


@pytest.fixture(scope="module")
def gaussian_draws():
    return np.random.default_rng(12345).standard_normal(1_000_000)


@pytest.mark.parametrize("spec", SPECS)
def test_second_moment_against_monte_carlo(spec, gaussian_draws):
    q = get_quantizer(spec)
    sq = q.apply(gaussian_draws) ** 2
    se = sq.std(ddof=1) / math.sqrt(sq.size)
    assert abs(sq.mean() - float(q.second_moment())) < 5 * se + 1e-12
    mean_se = np.sqrt(sq.mean() / sq.size)
    assert abs(q.apply(gaussian_draws).mean()) < 5 * mean_se


def test_closed_forms():
    assert sp.simplify(get_quantizer("sign-scaled").exact_second_moment - 2 / sp.pi) == 0
    t = sp.Rational(7, 10)
    assert (
        sp.simplify((get_quantizer("ternary:0.7").exact_second_moment - sp.erfc(t / sp.sqrt(2))).rewrite(sp.erf)) == 0
    )
    assert get_quantizer("sign").exact_second_moment == 1
    # 1-bit mid-rise with clip c has levels +-c/2
    assert get_quantizer("uniform:1:2").exact_second_moment == 1


def test_uniform_levels():
    q = get_quantizer("uniform:2:2")
    w = np.array([-5.0, -1.5, -0.5, 0.5, 1.5, 5.0])
    assert np.array_equal(q.apply(w), [-1.5, -1.5, -0.5, 0.5, 1.5, 1.5])


def test_piecewise_user_quantizer_is_exact():
    q = Quantizer.piecewise("my-ternary", [-0.5, 0.5], [-2, 0, 2]).check_centered()
    assert q.is_exact
    with mpmath.workdps(40):
        assert abs(q.second_moment(30) - 4 * mpmath.erfc(mpmath.mpf(0.5) / mpmath.sqrt(2))) < mpmath.mpf(10) ** -28
    assert np.array_equal(q.apply(np.array([-1.0, 0.1, 0.7])), [-2, 0, 2])


def test_custom_quantizer_with_numpy_callable():
    u = sp.Symbol("u", real=True)
    q = Quantizer.custom("cube", u**3, numpy_fn=lambda w: w**3).check_centered()
    assert q.second_moment() == 15


@pytest.mark.parametrize("spec", ["expr:abs(g)", "expr:g + 1", "expr:Heaviside(g)"])
def test_non_centred_rejected_with_explanation(spec):
    with pytest.raises(QuantizerError, match="rank-one spike"):
        get_quantizer(spec)


def test_asymmetric_piecewise_rejected():
    with pytest.raises(QuantizerError, match="mean"):
        Quantizer.piecewise("asym", [0], [-1, 2]).check_centered()


@pytest.mark.parametrize(
    "spec", ["foo", "uniform:0", "uniform:x", "ternary:-1", "ternary:z", "expr:__import__('os')", "expr:0*g"]
)
def test_bad_specs_rejected(spec):
    with pytest.raises(QuantizerError):
        get_quantizer(spec)
