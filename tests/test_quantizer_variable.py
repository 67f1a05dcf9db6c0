"""``Quantizer.custom`` and the assumptions of the expression's variable.

A symbol declared positive (or nonnegative, integer, ...) has already been used by SymPy when the
expression is built: ``Abs(g)`` is ``g``, ``sign(g)`` is ``1``.  Such an expression no longer
describes ``Q`` on the real line, so it is refused; a plain or real symbol gives the right ``s^2``.
"""

import mpmath
import numpy as np
import pytest
import sympy as sp

from rfq_theory.quantizers import Quantizer, QuantizerError


def _clipped(g):
    return sp.sign(g) * sp.Min(sp.Abs(g), 1)


@pytest.mark.parametrize("assumption", ["positive", "nonnegative", "negative", "integer", "nonzero"])
def test_a_variable_with_more_than_real_assumptions_is_refused(assumption):
    g = sp.Symbol("g", **{assumption: True})
    with pytest.raises(QuantizerError) as info:
        Quantizer.custom("clipped", _clipped(g))
    message = str(info.value)
    assert "\n" not in message and f"{assumption}=True" in message and "sp.Symbol('g')" in message


# Why a variable declared positive is refused: SymPy rewrites Abs(g) to g, sign(g) to 1 and
# Min(Abs(g), 1) to Min(g, 1) while the expression is built, before the quantizer sees it.


@pytest.mark.parametrize("symbol", [sp.Symbol("g"), sp.Symbol("g", real=True), sp.Symbol("w", real=True)])
def test_plain_or_real_variable_gives_the_quadrature_second_moment(symbol):
    q = Quantizer.custom("clipped", _clipped(symbol))
    w = np.linspace(-3, 3, 61)
    assert np.array_equal(q.apply(-w), -q.apply(w)) and np.array_equal(q.apply(w), np.clip(w, -1, 1))
    with mpmath.workdps(40):
        quad = mpmath.quad(lambda g: min(abs(g), 1) ** 2 * mpmath.npdf(g), [-mpmath.inf, -1, 0, 1, mpmath.inf])
        closed = 1 - 2 * mpmath.npdf(1)  # E min(|g|, 1)^2 = P(|g| < 1) - 2 phi(1) + P(|g| > 1)
        assert abs(quad - closed) < mpmath.mpf(10) ** -35
        assert abs(q.second_moment(30) - quad) < mpmath.mpf(10) ** -28
        assert abs(q.mean(30)) < mpmath.mpf(10) ** -28
