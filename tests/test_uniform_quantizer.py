"""The many-level uniform quantizer's ``s^2`` (Euler-Maclaurin after summation by parts) against
independent routes: the sum over cells of level^2 times the cell's Gaussian probability, a Monte
Carlo average of ``Q(g)^2`` and, for few levels, quadrature of ``Q(g)^2 phi(g)`` cell by cell."""

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfq_theory.quantizers import get_quantizer


def _cell_sum(bits, clip, dps=45):
    """``sum_j l_j^2 P(cell j)`` with each probability from two normal CDF values (its own route)."""
    half = 2 ** (bits - 1)
    with mpmath.workdps(dps):
        c = mpmath.mpf(clip.numerator) / clip.denominator
        delta = 2 * c / 2**bits
        total = mpmath.mpf(0)
        for j in range(half):  # positive side, doubled by symmetry
            lo = j * delta
            p = mpmath.ncdf(-lo) if j == half - 1 else mpmath.ncdf(-lo) - mpmath.ncdf(-(lo + delta))
            total += ((j + mpmath.mpf(1) / 2) * delta) ** 2 * p
        return 2 * total


def _spec(bits, clip):
    return f"uniform:{bits}" if clip == 3 else f"uniform:{bits}:{clip.numerator}/{clip.denominator}"


@pytest.mark.parametrize("bits,clip", [(7, Fraction(3)), (10, Fraction(3)), (8, Fraction(1, 1000)), (9, Fraction(40))])
def test_many_level_second_moment_equals_the_sum_over_cells(bits, clip):
    q = get_quantizer(_spec(bits, clip))
    assert q.uniform is not None  # the Euler-Maclaurin route is the one under test
    got = q.second_moment(30)
    ref = _cell_sum(bits, clip)
    assert abs(got - ref) <= mpmath.mpf(10) ** -29 * ref


@settings(max_examples=8)
@given(bits=st.integers(7, 9), num=st.integers(1, 60), den=st.integers(1, 9))
def test_second_moment_matches_cells_for_drawn_clips(bits, num, den):
    clip = Fraction(num, den)
    got = get_quantizer(_spec(bits, clip)).second_moment(25)
    ref = _cell_sum(bits, clip, dps=35)
    assert abs(got - ref) <= mpmath.mpf(10) ** -24 * ref


def test_sixteen_bits_against_monte_carlo_and_the_unquantized_limit():
    q = get_quantizer("uniform:16")
    s2 = q.second_moment(30)
    g = np.random.default_rng(0).standard_normal(400_000)
    vals = q.apply(g) ** 2
    se = vals.std() / np.sqrt(vals.size)
    assert abs(float(s2) - vals.mean()) < 5 * se
    # tiny cells: Q(g) is g clipped at c - Delta / 2, so s^2 = E min(|g|, c)^2 - 2 c Delta P(g > c) + O(Delta^2)
    with mpmath.workdps(30):
        c = mpmath.mpf(3)
        clipped = 1 - 2 * (mpmath.ncdf(-c) * (1 - c * c) + c * mpmath.npdf(c))
        delta = 2 * c / 2**16
        assert abs(s2 - (clipped - 2 * c * delta * mpmath.ncdf(-c))) < delta**2


@pytest.mark.slow
def test_few_bits_against_quadrature_of_the_step_function():
    """2^7 levels: integrate level^2 phi(g) over every cell with mpmath quadrature."""
    q = get_quantizer("uniform:7")
    bps = [mpmath.mpf(Fraction(b).numerator) / Fraction(b).denominator for b in q.steps[0]]
    lvls = [mpmath.mpf(Fraction(x).numerator) / Fraction(x).denominator for x in q.steps[1]]
    with mpmath.workdps(35):
        edges = [-mpmath.inf] + bps + [mpmath.inf]
        total = mpmath.fsum(lv**2 * mpmath.quad(mpmath.npdf, [a, b]) for a, b, lv in zip(edges[:-1], edges[1:], lvls))
    assert abs(q.second_moment(30) - total) <= mpmath.mpf(10) ** -28


def test_coarse_cells_fall_back_to_the_sum_over_levels():
    """Huge cells (a clip far beyond the Gaussian's reach): no Euler-Maclaurin order is accurate enough;
    the value still equals the cell sum."""
    clip = Fraction(10**6)
    q = get_quantizer(_spec(7, clip))
    ref = _cell_sum(7, clip)
    assert abs(q.second_moment(30) - ref) <= mpmath.mpf(10) ** -29 * ref
