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

import sympy as sp

from .activations import Activation, V, get_activation
from .caches import register_cache
from .checks import MAX_WORKING_DIGITS, InputError, check_digits, to_mpf_exactly
from .expressions import U
from .gaussian import GUARD_DIGITS, check_square_integrable, gaussian_expectation
from .precision import MPF, SYMPY_LOCK, context, freeze
from .precision import mp as mpmath

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
    variance: MPF
    mu0: MPF
    mu1: MPF
    mu_star: MPF
    second_moment: MPF
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
    digits = check_digits(digits, MAX_WORKING_DIGITS)
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
                values.append(_closed_value(form, v, digits + GUARD_DIGITS))
                exact.append(True)
            else:
                values.append(
                    gaussian_expectation(integrand, v, digits + 3, kinks=act.kinks, what=f"activation {act.name!r}")
                )
                exact.append(False)
        # cached across threads: frozen numbers (fixed precision, see rfq_theory.precision)
        return tuple(freeze(x, digits + GUARD_DIGITS) for x in values), tuple(exact)


def _closed_value(form, v, work):
    """A closed form evaluated to ``work`` correct digits despite cancellation.

    Closed forms such as ``(1 - exp(-2v))/2`` cancel at tiny ``v``; the form
    is evaluated at two precisions and the precision is raised until both
    agree to ``work`` digits (at most :data:`MAX_EXTRA_DIGITS` extra).
    """
    ctx = context()
    extra = 10
    if v < 1:
        extra += int(-mpmath.log10(v))
    previous = None
    while True:
        with ctx.workdps(work + extra):
            value = ctx.mpf(form(ctx.mpf(v)))
        if previous is not None and abs(value - previous) <= abs(value) * ctx.mpf(10) ** (-work - 2):
            return value
        if extra > MAX_EXTRA_DIGITS + work:
            raise ArithmeticError(f"closed form did not settle at {work} digits (v = {mpmath.nstr(v, 5)})")
        previous = value
        extra = 2 * extra + 10


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
        v_text = mpmath.nstr(
            to_mpf_exactly(variance, "variance", work + GUARD_DIGITS), work + GUARD_DIGITS, strip_zeros=False
        )
        (m0, m1, m2), _ = _moments_cached(act, v_text, work)
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


#: Below this variance an analytic activation's coefficients come from its Taylor series.
SERIES_MAX_VARIANCE = "1e-6"
_NON_ANALYTIC = (sp.Abs, sp.sign, sp.Heaviside, sp.Max, sp.Min, sp.Piecewise)


def _taylor(act, order):
    """Taylor polynomial of ``sigma`` at 0 to degree ``order`` (exact), or None if not analytic there."""
    key = ("taylor", order)
    if key in act._cache:
        return act._cache[key]
    result = None
    with SYMPY_LOCK:
        expr = act.expr
        if not any(isinstance(n, _NON_ANALYTIC) for n in sp.preorder_traversal(expr)):
            try:
                ser = sp.series(expr, U, 0, order + 1).removeO()
                ser = sp.expand(ser)
                if ser.is_polynomial(U) and not ser.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
                    poly = sp.Poly(ser, U)
                    if all(c.is_real and c.is_finite for c in poly.coeffs()):
                        result = poly
            except Exception:  # SymPy could not expand it: use quadrature
                result = None
    act._cache[key] = result
    return result


def _series_coefficients(act, v, digits):
    """``(m0, m1, m2, mu_star^2)`` from the Taylor series of ``sigma`` at tiny ``v``, or None.

    With ``sigma(u) = sum a_n u^n`` and ``E u^n = (n-1)!! v^(n/2)`` the
    moments and ``mu_star^2 = E sigma^2 - mu0^2 - mu1^2 v`` are polynomials
    in ``v`` with exact coefficients; ``mu_star^2`` is formed symbolically,
    so its leading term (``v^2 sigma''(0)^2 / 2`` or higher) carries no
    cancellation.  Used when the Gaussian mass beyond the series' estimated
    radius of convergence is negligible; the truncation keeps
    ``digits + 5`` digits relative to the leading term.
    """
    from .activations import V, gaussian_monomial_moment

    ctx = context()
    e = float(-mpmath.log10(v))
    if e < 6:
        return None
    per_order = e - 2
    order = 2 * (int((digits + 5) / per_order) + 4) + 1
    while order <= 81:
        poly = _taylor(act, order)
        if poly is None:
            return None
        coeffs = [(m[0], c) for m, c in zip(poly.monoms(), poly.coeffs())]
        top = [abs(float(c)) ** (-1.0 / n) for n, c in coeffs if n > order // 2 and c != 0]
        radius = min(top) if top else float("inf")
        if ctx.sqrt(v) * 60 > radius:
            return None
        K = (order + 1) // 2 - 1  # moments exact through v^K
        with SYMPY_LOCK:
            p = sp.Poly(poly.as_expr(), U)
            mom = lambda q: sp.expand(
                sum(c * gaussian_monomial_moment(m[0], V) for m, c in zip(q.monoms(), q.coeffs()))
            )
            trunc = lambda ex, K=K: sum(ex.coeff(V, k) * V**k for k in range(0, K + 1))
            m0, m1, m2 = mom(p), mom(p * sp.Poly(U, U)), mom(p**2)
            star = sp.expand(trunc(sp.expand(m2)) - trunc(sp.expand(m0**2)) - trunc(sp.expand(sp.expand(m1**2) / V)))
            star_poly = sp.Poly(star, V) if star != 0 else None
        if star_poly is None:
            order = 2 * order + 1
            continue
        lead = min(m[0] for m in star_poly.monoms())
        if (K - lead) * per_order < digits + 5:
            order = 2 * order + 1
            continue
        work = digits + GUARD_DIGITS
        with SYMPY_LOCK:
            parts = []
            for ex in (trunc(sp.expand(m0)), trunc(sp.expand(m1)), trunc(sp.expand(m2)), star):
                if ex == 0:
                    parts.append([])
                    continue
                q = sp.Poly(ex, V)
                parts.append([(m[0], sp.N(c, work + 5)) for m, c in zip(q.monoms(), q.coeffs())])
        with ctx.workdps(work):
            vv = ctx.mpf(v)
            return tuple(ctx.fsum(ctx.mpf(c) * vv**k for k, c in terms) for terms in parts)
    return None


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

    Notes
    -----
    Implements ``mu0 = E sigma(u)``, ``mu1 = E[u sigma(u)]/v``,
    ``mu_star^2 = E sigma(u)^2 - mu0^2 - mu1^2 v``, ``u ~ N(0, v)``.
    """
    digits = check_digits(digits, MAX_WORKING_DIGITS)
    return coefficients_at(activation, variance, digits + GUARD_DIGITS, digits)


def coefficients_at(activation, variance, work: int, digits: int) -> Coefficients:
    """:func:`coefficients` computed at ``work`` working digits, numbers kept to ``digits`` (``<= work``).

    For callers that have added the guard digits already (``propagate``
    passes its working precision for both): no second guard is stacked.
    """
    act = get_activation(activation)
    digits = check_digits(digits, MAX_WORKING_DIGITS + GUARD_DIGITS)
    out_digits, digits = digits, work - GUARD_DIGITS
    v = to_mpf_exactly(variance, "variance", digits + GUARD_DIGITS)
    series = None
    if not act.is_affine and v < mpmath.mpf(SERIES_MAX_VARIANCE):
        series = _series_coefficients(act, v, digits)
    if series is not None:
        m0, m1, m2, star2 = series
        exact = (act.is_exact,)
    else:
        (m0, m1, m2), exact = gaussian_moments(act, variance, digits)
    with mpmath.workdps(digits + GUARD_DIGITS):
        v = to_mpf_exactly(variance, "variance", digits + GUARD_DIGITS)
        mu1 = m1 / v
        if series is None:
            star2 = _mu_star_squared(act, variance, digits) if not act.is_affine else mpmath.mpf(0)
        mu_star = mpmath.sqrt(star2)
        return Coefficients(
            activation=act.name,
            variance=freeze(v, out_digits),
            mu0=freeze(m0, out_digits),
            mu1=freeze(mu1, out_digits),
            mu_star=freeze(mu_star, out_digits),
            second_moment=freeze(m2, out_digits),
            exact=all(exact),
            digits=out_digits,
        )


def closed_forms(activation, variance=V):
    """Closed forms of ``mu0, mu1, mu_star`` and ``E sigma^2`` where they exist.

    Returns a dict with the keys ``mu0``, ``mu1``, ``mu_star`` and
    ``second_moment``; a coefficient without closed form is ``None``.
    ``variance`` may be a SymPy symbol (default: the positive symbol ``v``)
    or an exact number (a decimal string is taken exactly).
    """
    act = get_activation(activation)
    with SYMPY_LOCK:
        return _closed_forms(act, variance)


def _closed_forms(act, variance):
    if isinstance(variance, str):
        from .checks import read_decimal

        frac = read_decimal(variance, "variance")
        variance = sp.Rational(frac.numerator, frac.denominator)
    elif isinstance(variance, bool):
        raise TypeError(f"variance must be a number or a SymPy symbol, got {variance!r}")
    elif isinstance(variance, int):
        variance = sp.Integer(variance)
    elif isinstance(variance, float):
        variance = sp.Rational(*variance.as_integer_ratio())  # the float's exact binary value
    if not isinstance(variance, sp.Basic):
        raise TypeError(f"variance must be a number or a SymPy symbol, got {type(variance).__name__}")
    if variance.is_positive is False or (variance.is_number and not variance.is_finite):
        raise InputError(f"variance must be > 0 and finite, got {variance}")
    if variance.is_number and variance.is_positive is not True:
        raise InputError(f"variance must be > 0, got {variance}")
    m0, m1, m2 = act.moments_exact(variance)
    out = {
        "mu0": None if m0 is None else _tidy(m0),
        "mu1": None if m1 is None else _tidy(m1 / variance),
        "mu_star": None,
        "second_moment": None if m2 is None else _tidy(m2),
    }
    if None not in (m0, m1, m2):
        out["mu_star"] = sp.sqrt(_tidy(m2 - out["mu0"] ** 2 - out["mu1"] ** 2 * variance))
    return out


def _tidy(expr):
    """``expr`` in its simplest form: expanded for polynomials (and rational functions) of the
    variance, where ``simplify`` costs minutes at high degree, ``sp.simplify`` otherwise."""
    symbols = expr.free_symbols
    if not symbols or expr.is_polynomial(*symbols):
        return sp.expand(expr)
    if expr.is_rational_function(*symbols):
        return sp.cancel(expr)
    return sp.simplify(expr)


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
