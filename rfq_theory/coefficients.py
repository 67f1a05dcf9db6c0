"""Gaussian-equivalent coefficients of an activation.

For ``u ~ N(0, v)`` (notation of ``docs/theory.md``):

    mu0      = E sigma(u)
    mu1      = E[u sigma(u)] / v
    mu_star  = sqrt(E sigma(u)^2 - mu0^2 - mu1^2 v)

so that ``E sigma^2 = mu0^2 + mu1^2 v + mu_star^2`` holds by construction.

:func:`coefficients` returns numbers (``mpmath.mpf``) to any precision,
from the activation's closed forms where it has them and from quadrature
otherwise; :func:`exact_coefficients` returns SymPy expressions and
refuses when a closed form is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mpmath
import sympy as sp

from .caches import register_cache
from .activations import V, Activation, get_activation
from .gaussian import GUARD_DIGITS, check_square_integrable, gaussian_expectation
from .checks import check_digits, to_mpf_exactly

__all__ = ["Coefficients", "coefficients", "closed_forms", "exact_coefficients", "NotExactError", "gaussian_moments"]


class NotExactError(ValueError):
    """No closed form is known for a requested coefficient."""


@dataclass(frozen=True)
class Coefficients:
    """Gaussian-equivalent coefficients of one activation at one variance.

    All numbers are ``mpmath.mpf`` carrying at least ``digits`` correct
    significant digits (absolute ``10**-digits`` for values near zero).
    ``exact`` is True when every number came from a closed form.
    """

    activation: str
    variance: mpmath.mpf
    mu0: mpmath.mpf
    mu1: mpmath.mpf
    mu_star: mpmath.mpf
    second_moment: mpmath.mpf
    exact: bool
    digits: int

    @property
    def variance_of_sigma(self):
        """``Var sigma(u) = mu1^2 v + mu_star^2`` (the next layer's ``q``)."""
        return self.second_moment - self.mu0**2


def gaussian_moments(activation, variance, digits=15):
    """``(E sigma, E u sigma, E sigma^2)`` at ``u ~ N(0, variance)`` and which were exact.

    Returns ``((m0, m1, m2), (exact0, exact1, exact2))`` with ``mpf`` values.
    """
    act = get_activation(activation)
    digits = check_digits(digits)
    v = to_mpf_exactly(variance, "variance", digits + GUARD_DIGITS)
    return _moments_cached(act, mpmath.nstr(v, digits + GUARD_DIGITS, strip_zeros=False), digits)


@lru_cache(maxsize=4096)
def _moments_cached(act: Activation, v_text: str, digits: int):
    with mpmath.workdps(digits + GUARD_DIGITS):
        v = mpmath.mpf(v_text)
        closed = act.moments_mpmath()
        fn = act.mpmath()
        need_quad = any(c is None for c in closed)
        if need_quad:
            check_square_integrable(fn, v, what=f"activation {act.name!r}")
        values, exact = [], []
        integrands = (fn, lambda u: u * fn(u), lambda u: fn(u) ** 2)
        for form, integrand in zip(closed, integrands):
            if form is not None:
                values.append(mpmath.mpf(form(v)))
                exact.append(True)
            else:
                values.append(
                    gaussian_expectation(integrand, v, digits + 3, kinks=act.kinks, what=f"activation {act.name!r}")
                )
                exact.append(False)
    return tuple(values), tuple(exact)


#: Largest number of extra digits spent on resolving a tiny mu_star^2.
MAX_EXTRA_DIGITS = 600


def _mu_star_squared(act, variance, digits):
    """``E sigma^2 - mu0^2 - mu1^2 v`` with ``digits`` correct significant digits.

    The difference cancels when ``sigma`` is nearly linear on the scale of
    ``sqrt(v)`` (e.g. ``tanh`` at tiny ``v``): the moments are then
    recomputed with as many extra digits as the cancellation costs. Only an
    affine ``sigma`` has ``mu_star = 0`` (the Gaussian measure charges the
    whole line); for any other activation a value that stays below
    ``10^-(digits + MAX_EXTRA_DIGITS)`` of ``E sigma^2`` is returned as 0.
    """
    extra = 0
    while True:
        work = digits + extra
        (m0, m1, m2), _ = gaussian_moments(act, variance, work)
        with mpmath.workdps(work + GUARD_DIGITS):
            v = to_mpf_exactly(variance, "variance", work + GUARD_DIGITS)
            star2 = m2 - m0**2 - m1**2 / v
            # the moments carry ~work + 3 digits, so star2 keeps work + 3 - lost
            lost = mpmath.log10(abs(m2) / star2) if star2 > 0 else mpmath.mpf(work + 3)
            if star2 > 0 and work + 3 - lost >= digits:
                return star2
            if star2 < -abs(m2) * mpmath.mpf(10) ** (-work + 2):  # pragma: no cover - a broken closed form
                raise ArithmeticError(f"negative mu_star^2 = {star2} for {act.name} at v = {v}")
        if extra >= MAX_EXTRA_DIGITS:
            return mpmath.mpf(0)
        extra = min(MAX_EXTRA_DIGITS, max(2 * extra + 10, int(lost) + 8))


def coefficients(activation, variance, digits=15) -> Coefficients:
    """Gaussian-equivalent coefficients ``mu0, mu1, mu_star`` of ``activation``.

    Parameters
    ----------
    activation:
        Name, ``name:param`` or expression (see :func:`get_activation`).
    variance:
        Preactivation variance ``v > 0``: a number or a decimal string
        (strings such as ``"0.7"`` are taken exactly, as ``7/10``).
    digits:
        Significant digits of the result (1 to 1000).

    Implements ``mu0 = E sigma(u)``, ``mu1 = E[u sigma(u)]/v``,
    ``mu_star^2 = E sigma(u)^2 - mu0^2 - mu1^2 v``, ``u ~ N(0, v)``.
    """
    act = get_activation(activation)
    digits = check_digits(digits)
    (m0, m1, m2), exact = gaussian_moments(act, variance, digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        v = to_mpf_exactly(variance, "variance", digits + GUARD_DIGITS)
        mu1 = m1 / v
        star2 = _mu_star_squared(act, variance, digits) if not act.is_affine else mpmath.mpf(0)
        mu_star = mpmath.sqrt(star2)
        return Coefficients(
            activation=act.name,
            variance=+v,
            mu0=+m0,
            mu1=+mu1,
            mu_star=+mu_star,
            second_moment=+m2,
            exact=all(exact),
            digits=digits,
        )


def closed_forms(activation, variance=V):
    """Closed forms of ``mu0, mu1, mu_star`` and ``E sigma^2`` where they exist.

    Returns a dict with the keys ``mu0``, ``mu1``, ``mu_star`` and
    ``second_moment``; a coefficient without closed form is ``None``.
    ``variance`` may be a SymPy symbol (default: the positive symbol ``v``)
    or an exact number (a decimal string is taken exactly).
    """
    act = get_activation(activation)
    if isinstance(variance, str):
        variance = sp.Rational(variance)
    elif isinstance(variance, int):
        variance = sp.Integer(variance)
    elif isinstance(variance, float):
        variance = sp.Rational(repr(variance))
    m0, m1, m2 = act.moments_exact(variance)
    out = {
        "mu0": None if m0 is None else sp.simplify(m0),
        "mu1": None if m1 is None else sp.simplify(m1 / variance),
        "mu_star": None,
        "second_moment": None if m2 is None else sp.simplify(m2),
    }
    if None not in (m0, m1, m2):
        out["mu_star"] = sp.sqrt(sp.simplify(m2 - out["mu0"] ** 2 - out["mu1"] ** 2 * variance))
    return out


def exact_coefficients(activation, variance=V):
    """Closed forms of ``mu0, mu1, mu_star`` and ``E sigma^2`` as SymPy expressions.

    ``variance`` may be a SymPy symbol (default: the positive symbol ``v``)
    or an exact number.  Raises :class:`NotExactError` naming the
    coefficients without closed form (see :func:`closed_forms` for the
    partial answer).
    """
    forms = closed_forms(activation, variance)
    missing = [n for n in ("mu0", "mu1", "second_moment") if forms[n] is None]
    if missing:
        raise NotExactError(
            f"activation {get_activation(activation).name!r} has no closed form for {', '.join(missing)}; "
            "use coefficients() for high-precision quadrature"
        )
    return forms


register_cache(_moments_cached.cache_clear)
