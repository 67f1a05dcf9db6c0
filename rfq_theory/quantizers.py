"""Quantizer registry.

A quantizer ``Q`` acts entrywise on the i.i.d. ``N(0, 1)`` entries of a
random weight matrix.  In the proportional limit a layer sees its weights
only through

    s^2 = E Q(g)^2,     g ~ N(0, 1),

provided ``E Q(g) = 0`` (a non-zero mean adds a rank-one spike
``E[Q] 1 1^T`` to the weight matrix, which the Gaussian-equivalent theory
does not cover, so such quantizers are rejected).

Built-ins (:func:`get_quantizer`):

================  =====================================  =====================
spec              Q(g)                                   s^2 (exact)
================  =====================================  =====================
``none``          g                                      1
``sign``          sign(g)                                1
``sign-scaled``   sqrt(2/pi) sign(g)  (MSE-optimal scale)  2/pi
``ternary:<t>``   sign(g) 1{|g| > t}                     erfc(t / sqrt 2)
``uniform:<b>[:<c>]``  b-bit symmetric mid-rise on [-c, c]  sum over levels
================  =====================================  =====================

``uniform`` uses ``2^b`` levels ``+-(j + 1/2) Delta``, ``Delta = 2c / 2^b``,
saturating outside ``[-c, c]``; the default clip is ``c = 3`` (three
standard deviations of the weights).  Above 64 levels ``s^2`` comes from
the Euler-Maclaurin formula for the sum over levels (a handful of
``erfc`` and Hermite values instead of one ``erfc`` per level), with a
rigorous remainder bound; coarse cells fall back to the sum itself.

User quantizers: :meth:`Quantizer.piecewise` (a step function given by
breakpoints and levels: exact moments), :meth:`Quantizer.from_expression`
(a safely parsed expression in ``g``, moments by quadrature unless it is a
polynomial) and :meth:`Quantizer.custom` (a NumPy callable plus a SymPy
expression written in code).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np
import sympy as sp

from .caches import register_cache
from .expressions import ExpressionError, U, parse_expression
from .gaussian import GUARD_DIGITS, check_square_integrable, gaussian_expectation
from .precision import SYMPY_LOCK, context, freeze, lambdify
from .precision import mp as mpmath

__all__ = ["Quantizer", "QuantizerError", "get_quantizer", "builtin_quantizers", "G"]

#: Symbol for a standard Gaussian weight in quantizer expressions.
G = U  # quantizer expressions share the parser's variable symbol

DEFAULT_UNIFORM_CLIP = 3


class QuantizerError(ValueError):
    """Unknown, malformed or unusable quantizer."""


def _std_normal_cdf(x):
    return (1 + sp.erf(x / sp.sqrt(2))) / 2


#: Largest absolute value of a quantizer level, breakpoint or threshold.
MAX_QUANTIZER_PARAMETER = 1e100


def _exact_number(value, what):
    """A finite real quantizer parameter as an exact SymPy number.

    Accepts ints, floats (their exact binary value), Fractions,
    SymPy numbers and text, which goes through the safe expression parser
    (no variable allowed): text never reaches ``sympify``.
    """
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if isinstance(value, int):
        x = sp.Integer(value)
    elif isinstance(value, float):
        if not np.isfinite(value):
            raise QuantizerError(f"{what} must be finite, got {value!r}")
        x = sp.Rational(*value.as_integer_ratio())  # the float's exact binary value, as everywhere
    elif isinstance(value, Fraction):
        x = sp.Rational(value.numerator, value.denominator)
    elif isinstance(value, str):
        try:
            x = parse_expression(value, variables=(), what=what)
        except ExpressionError as exc:
            raise QuantizerError(str(exc)) from None
    elif isinstance(value, sp.Basic):
        x = value
    elif isinstance(value, np.number):
        return _exact_number(value.item(), what)
    else:
        raise TypeError(f"{what} must be a number or a numeric string, got {value!r} of type {type(value).__name__}")
    if not (isinstance(x, sp.Expr) and x.is_number and x.is_real and x.is_finite):
        raise QuantizerError(f"{what} must be a finite real number, got {value!r}")
    if abs(float(x)) > MAX_QUANTIZER_PARAMETER:
        raise QuantizerError(f"{what} must be at most {MAX_QUANTIZER_PARAMETER:g} in absolute value, got {value!r}")
    return x


def _interval_probability(ctx, lo, hi):
    """``P(lo < g <= hi)`` for ``g ~ N(0, 1)`` without cancellation in the tails."""
    r2 = ctx.sqrt(2)
    if lo is None and hi is None:
        return ctx.mpf(1)
    if lo is None:
        return ctx.erfc(-hi / r2) / 2
    if hi is None:
        return ctx.erfc(lo / r2) / 2
    if lo >= 0:
        return (ctx.erfc(lo / r2) - ctx.erfc(hi / r2)) / 2
    if hi <= 0:
        return (ctx.erfc(-hi / r2) - ctx.erfc(-lo / r2)) / 2
    return 1 - (ctx.erfc(hi / r2) + ctx.erfc(-lo / r2)) / 2


def _antisymmetric(xs) -> bool:
    """``xs[i] == -xs[n-1-i]`` for all ``i`` (rationals compared by numerator and denominator)."""
    n = len(xs)
    for i in range((n + 1) // 2):
        a, b = xs[i], xs[n - 1 - i]
        if isinstance(a, sp.Rational) and isinstance(b, sp.Rational):
            if a.p != -b.p or a.q != b.q:
                return False
        elif isinstance(a, Fraction) and isinstance(b, Fraction):
            if a.numerator != -b.numerator or a.denominator != b.denominator:
                return False
        elif a != -b:
            return False
    return True


def _to_mpf(ctx, x, dps):
    """A SymPy number or Fraction as an mpf at the current precision (rationals without SymPy's evalf;
    a denominator that is a power of two is an exact binary scaling)."""
    if isinstance(x, Fraction):
        p, q = x.numerator, x.denominator
    elif isinstance(x, sp.Rational):
        p, q = int(x.p), int(x.q)
    else:
        with SYMPY_LOCK:
            return ctx.mpf(sp.N(x, dps))
    if q & (q - 1) == 0:
        return ctx.ldexp(ctx.mpf(p), 1 - q.bit_length())
    return ctx.mpf(p) / q


def _step_moment(ctx, b, lv, k):
    """``E Q(g)^k = sum_i lv_i^k P(b_{i-1} < g <= b_i)`` for a step quantizer, ``g ~ N(0, 1)``.

    The same interval probabilities as :func:`_interval_probability` (tails
    through ``erfc``, no cancellation), with one ``erfc`` per distinct
    ``|b_i|``: ``t(b) = erfc(|b| / sqrt 2) / 2`` is ``P(g > b)`` for ``b >= 0``
    and ``P(g <= b)`` for ``b <= 0``, so a symmetric quantizer needs half of them.
    """
    r2 = ctx.sqrt(2)
    tails = {}
    t = []
    for x in b:
        a = abs(x)
        e = tails.get(a)
        if e is None:
            e = tails[a] = ctx.erfc(a / r2) / 2
        t.append(e)
    n = len(b)

    def below(i):  # P(g <= b_i)
        return t[i] if b[i] <= 0 else 1 - t[i]

    def above(i):  # P(g > b_i)
        return t[i] if b[i] >= 0 else 1 - t[i]

    terms = []
    for i in range(n + 1):
        lo, hi = i - 1, i  # interval (b[lo], b[hi]]; -1 and n mean -inf and +inf
        if lo < 0 and hi >= n:
            p = ctx.mpf(1)
        elif lo < 0:
            p = below(hi)
        elif hi >= n:
            p = above(lo)
        elif b[lo] >= 0:
            p = t[lo] - t[hi]
        elif b[hi] <= 0:
            p = t[hi] - t[lo]
        else:
            p = 1 - (t[hi] + t[lo])
        terms.append((lv[i] * lv[i] if k == 2 else lv[i] ** k) * p)
    return ctx.fsum(terms)


#: Cramér's bound ``|He_n(x)| exp(-x^2 / 4) <= K sqrt(n!)`` on the probabilists' Hermite polynomials
_CRAMER_K = 1.086435


def _uniform_second_moment(ctx, delta, half):
    """``s^2`` of the symmetric mid-rise quantizer with ``2 half`` levels ``+-(j + 1/2) delta``,
    cells ``(j delta, (j + 1) delta]`` and saturation at ``c = half delta``, by Euler-Maclaurin.

    Summation by parts turns the sum over levels into

        s^2 = delta^2 / 4 + 4 delta sum_{j=1}^{half-1} f(j delta),     f(x) = x T(x),

    with ``T(x) = P(g > x) = erfc(x / sqrt 2) / 2``.  The Euler-Maclaurin formula gives the sum
    from ``int_0^c f = c^2 T(c) / 2 + (1/2 - T(c) - c phi(c)) / 2`` and the odd derivatives of
    ``f`` at ``0`` and ``c`` (``f^(m) = x T^(m) + m T^(m-1)``, ``T^(m) = (-1)^m He_{m-1} phi``).
    The remainder after ``p`` correction terms is at most
    ``2 zeta(2p) / (2 pi)^(2p) delta^(2p-1) int_0^c |f^(2p)|``, bounded with Cramér's inequality.
    Returns ``None`` when no ``p <= 40`` brings that bound below the working precision (coarse
    cells: the caller sums over the levels instead).  Runs in the caller's precision context.
    """
    if half < 2:
        return None
    c = delta * half
    eps = ctx.mpf(10) ** (-ctx.dps)
    scale = delta * delta / 4  # s^2 >= delta^2 / 4: the remainder is measured against it
    two_pi = 2 * ctx.pi
    p = None
    for q in range(1, 41):
        integral = (
            _CRAMER_K
            / ctx.sqrt(two_pi)
            * (2 * ctx.sqrt(ctx.factorial(2 * q - 1)) + 2 * q * ctx.sqrt(ctx.pi * ctx.factorial(2 * q - 2)))
        )
        bound = 4 * delta * 2 * ctx.zeta(2 * q) / two_pi ** (2 * q) * delta ** (2 * q - 1) * integral
        if bound <= eps * scale:
            p = q
            break
    if p is None:
        return None
    # the cancellations below lose up to 2 log10(1 / c) digits when the clip is small
    extra = max(0, int(-2 * ctx.log10(c))) + 5 if c < 1 else 5
    with ctx.extradps(extra):
        r2 = ctx.sqrt(2)
        tail = ctx.erfc(c / r2) / 2
        dens = ctx.exp(-c * c / 2) / ctx.sqrt(two_pi)
        integral = c * c * tail / 2 + (ctx.mpf(1) / 2 - tail - c * dens) / 2

        def he(n, x):  # He_0 .. He_n at x
            out = [ctx.mpf(1), x]
            for k in range(1, n):
                out.append(x * out[k] - k * out[k - 1])
            return out[: n + 1]

        def t_derivs(x, t0, ph, n):  # T, T', ..., T^(n) at x
            h = he(max(n - 1, 1), x)
            return [t0] + [(-1) ** m * h[m - 1] * ph for m in range(1, n + 1)]

        m_max = 2 * p - 1
        d0 = t_derivs(ctx.zero, ctx.mpf(1) / 2, 1 / ctx.sqrt(two_pi), m_max)
        dc = t_derivs(c, tail, dens, m_max)
        f_c = c * tail
        total = integral / delta + f_c / 2  # f(0) = 0
        for k in range(1, p + 1):
            m = 2 * k - 1
            fc = c * dc[m] + m * dc[m - 1]
            f0 = m * d0[m - 1]
            total += ctx.bernoulli(2 * k) / ctx.factorial(2 * k) * delta**m * (fc - f0)
        total -= f_c  # the sum runs over j = 1 .. half - 1
        return scale + 4 * delta * total


#: the assumptions of a real SymPy symbol: a quantizer's variable may carry these and nothing more
_REAL_ASSUMPTIONS = frozenset(sp.Symbol("x", real=True).assumptions0.items())


def _check_plain_variable(symbol) -> None:
    """Refuse a variable whose assumptions go beyond ``real``: SymPy has already used them."""
    extra = sorted(k for k, v in symbol.assumptions0.items() if (k, v) not in _REAL_ASSUMPTIONS)
    if extra:
        given = getattr(symbol, "_assumptions_orig", None) or {k: symbol.assumptions0[k] for k in extra}
        shown = ", ".join(f"{k}={v}" for k, v in sorted(given.items()) if (k, v) not in _REAL_ASSUMPTIONS)
        raise QuantizerError(
            f"Quantizer.custom: the variable {symbol} is declared {shown or ', '.join(extra)}; SymPy has "
            f"already simplified the expression under that assumption (Abs({symbol}) becomes {symbol} for a "
            f"positive {symbol}), so it would not describe Q on the whole real line: build it with "
            f"sp.Symbol({str(symbol)!r}) or sp.Symbol({str(symbol)!r}, real=True)"
        )


@dataclass(frozen=True, eq=False)
class Quantizer:
    """An entrywise weight quantizer.

    Attributes
    ----------
    name:
        Display name (for built-ins and ``expr:`` quantizers the spec string).
    expr:
        SymPy expression of ``Q(g)`` in the symbol ``u`` (used for quadrature).
    numpy:
        Vectorised ``W -> Q(W)`` on NumPy arrays.
    exact_mean, exact_second_moment:
        ``E Q(g)`` and ``s^2 = E Q(g)^2`` as SymPy expressions, or ``None``
        where only quadrature is available (built lazily for step quantizers).
    kinks:
        Jump points of ``Q`` (quadrature splits there).
    steps:
        ``(breakpoints, levels)`` of a step quantizer (exact SymPy numbers),
        else ``None``; their moments are sums over the levels.
    spec:
        A string that :func:`get_quantizer` maps back to this quantizer
        (``None`` for quantizers built in code).
    """

    name: str
    expr: sp.Expr
    numpy: Callable[[np.ndarray], np.ndarray]
    exact_mean_expr: sp.Expr | None = None
    exact_second_expr: sp.Expr | None = None
    kinks: tuple = ()
    steps: tuple | None = None
    spec: str | None = None
    _cache: dict = field(default_factory=dict, repr=False)
    #: ``(delta, half)`` of a uniform quantizer with many levels (``s^2`` by Euler-Maclaurin), else ``None``
    uniform: tuple | None = field(default=None, repr=False)

    def __reduce__(self):
        """Pickle as the spec string (rebuilt by :func:`get_quantizer`) or the steps of a step quantizer.

        A quantizer built in code with :meth:`custom` raises ``TypeError``
        naming it: give it as an ``expr:`` spec to send it to another process.
        """
        if self.spec is not None:
            return (get_quantizer, (self.spec,))
        if self.steps is not None:
            breakpoints, levels = self.steps
            return (Quantizer.piecewise, (self.name, tuple(breakpoints), tuple(levels)))
        raise TypeError(
            f"quantizer {self.name!r} was built in code and cannot be pickled; give it as an 'expr:' spec string"
        )

    # -- construction helpers ------------------------------------------------

    @classmethod
    def piecewise(cls, name: str, breakpoints: Sequence, levels: Sequence, spec: str | None = None) -> Quantizer:
        """Step quantizer: ``Q(g) = levels[i]`` for ``breakpoints[i-1] < g <= breakpoints[i]``.

        ``len(levels) == len(breakpoints) + 1``; breakpoints strictly
        increasing.  Each entry is a number (int, float, Fraction, SymPy
        number) or a numeric string read by the safe expression parser
        (e.g. ``"sqrt(2/pi)"``); absolute values at most
        :data:`MAX_QUANTIZER_PARAMETER`.  ``s^2`` is the sum over levels
        ``sum_i levels[i]^2 P(breakpoints[i-1] < g <= breakpoints[i])``.
        """
        with SYMPY_LOCK:
            if isinstance(breakpoints, (str, bytes)) or isinstance(levels, (str, bytes)):
                raise TypeError("breakpoints and levels must be sequences of numbers, not strings")
            bps = tuple(_exact_number(b, f"breakpoint {i}") for i, b in enumerate(breakpoints))
            lvls = tuple(_exact_number(x, f"level {i}") for i, x in enumerate(levels))
            if len(lvls) != len(bps) + 1:
                raise QuantizerError(
                    f"piecewise quantizer {name!r} needs len(levels) == len(breakpoints) + 1, "
                    f"got {len(lvls)} levels and {len(bps)} breakpoints"
                )
            if any(bps[i] >= bps[i + 1] for i in range(len(bps) - 1)):
                raise QuantizerError(f"piecewise quantizer {name!r}: breakpoints must be strictly increasing")
            if len(lvls) <= 32:
                pieces = [(lvls[i], U <= bps[i]) for i in range(len(bps))] + [(lvls[-1], True)]
                expr = sp.Piecewise(*pieces)
            else:  # a symbolic form of thousands of pieces is never needed
                expr = sp.Symbol(f"Q_{len(lvls)}_levels")

        return cls._from_steps(name, bps, lvls, spec, expr)

    @classmethod
    def _from_steps(cls, name, bps, lvls, spec, expr=None, floats=None) -> Quantizer:
        """A step quantizer from breakpoints and levels that are already exact, checked SymPy numbers
        (``floats``: their correctly rounded float values as two arrays, when the caller has them)."""
        if floats is None:
            bps_f = np.array([float(b) for b in bps])
            lv_f = np.array([float(x) for x in lvls])
        else:
            bps_f, lv_f = floats
        if expr is None:
            expr = sp.Symbol(f"Q_{len(lvls)}_levels")

        def apply(w):
            return lv_f[np.searchsorted(bps_f, w, side="left")]

        return cls(name, expr, apply, None, None, tuple(bps_f.tolist()), (tuple(bps), tuple(lvls)), spec)

    @classmethod
    def from_expression(cls, text: str, name: str | None = None) -> Quantizer:
        """Quantizer from a user expression in ``g`` (or ``w``), parsed safely; ``spec`` is ``expr:<text>``."""
        try:
            expr = parse_expression(text, variables=("g", "w"), what="quantizer")
        except ExpressionError as exc:
            raise QuantizerError(str(exc)) from None
        q = cls.custom(name or f"expr:{text.strip()}", expr)
        object.__setattr__(q, "spec", f"expr:{text.strip()}")
        return q

    @classmethod
    def custom(cls, name: str, expr: sp.Expr, numpy_fn: Callable | None = None) -> Quantizer:
        """Quantizer from a SymPy expression in one variable (and an optional NumPy callable).

        The variable may be any SymPy symbol (``u`` or ``g``, real or not):
        it is replaced by the package's real variable ``u``.  A symbol declared
        with more than ``real=True`` (``positive``, ``nonnegative``, ``integer``,
        ...) is refused with :class:`QuantizerError`: SymPy applies such
        assumptions when the expression is built (``Abs(g)`` becomes ``g`` for a
        positive ``g``), so the expression no longer describes ``Q`` on the
        whole real line.  ``expr`` is
        trusted code, not user text: parse user text with
        :meth:`from_expression`.  Polynomials get exact moments; everything
        else is integrated numerically.
        """
        from .activations import _kinks, _numpy_from_expr, gaussian_monomial_moment

        if not isinstance(expr, sp.Expr) or isinstance(expr, str):
            raise TypeError(
                f"Quantizer.custom needs a SymPy expression, got {type(expr).__name__}; "
                "parse text with Quantizer.from_expression"
            )
        free = sorted(expr.free_symbols, key=str)
        if len(free) > 1:
            raise TypeError(
                f"Quantizer.custom needs an expression in one variable, got {expr} in {', '.join(map(str, free))}"
            )
        if free and free[0] != U:
            _check_plain_variable(free[0])
            expr = expr.xreplace({free[0]: U})  # any symbol (g, a non-real u) becomes the real u
        with SYMPY_LOCK:
            if numpy_fn is None:
                numpy_fn = _numpy_from_expr(expr)
            mean = second = None
            if expr.is_polynomial(U):
                poly = sp.Poly(expr, U)
                mom = lambda p: sp.expand(
                    sum(c * gaussian_monomial_moment(m[0], 1) for m, c in zip(p.monoms(), p.coeffs()))
                )
                mean, second = mom(poly), mom(poly**2)
            kinks = _kinks(expr)
        return cls(name, expr, numpy_fn, mean, second, kinks)

    # -- moments -------------------------------------------------------------

    @property
    def exact_mean(self):
        """``E Q(g)`` as a SymPy expression, or ``None``."""
        return self._exact(1)

    @property
    def exact_second_moment(self):
        """``s^2 = E Q(g)^2`` as a SymPy expression, or ``None``."""
        return self._exact(2)

    def _exact(self, k):
        given = self.exact_mean_expr if k == 1 else self.exact_second_expr
        if given is not None or self.steps is None:
            return given
        key = ("exact", k)
        if key not in self._cache:
            bps, lvls = self.steps
            if len(lvls) > 64:
                raise QuantizerError(
                    f"quantizer {self.name!r} has {len(lvls)} levels; its closed form is not built "
                    "(at most 64 levels), use the numerical s^2"
                )
            with SYMPY_LOCK:
                edges = [None] + list(bps) + [None]
                total = sp.Integer(0)
                for lo, hi, lv in zip(edges[:-1], edges[1:], lvls):
                    p_hi = 1 if hi is None else _std_normal_cdf(hi)
                    p_lo = 0 if lo is None else _std_normal_cdf(lo)
                    total += lv**k * (p_hi - p_lo)
                self._cache[key] = sp.simplify(total) if len(lvls) <= 8 else total
        return self._cache[key]

    def apply(self, W) -> np.ndarray:
        """Quantize a NumPy array entrywise (what the simulators use)."""
        out = self.numpy(np.asarray(W, dtype=float))
        return np.asarray(out, dtype=float)

    def _moment(self, k, digits):
        key = (k, digits)
        value = self._cache.get(key)
        if value is not None:
            return value
        ctx = context()
        with ctx.workdps(digits + GUARD_DIGITS):
            if k == 2 and self.uniform is not None:
                delta, half = self.uniform
                value = _uniform_second_moment(ctx, _to_mpf(ctx, delta, digits + GUARD_DIGITS), half)
            if value is not None:
                pass
            elif self.steps is not None:
                bps, lvls = self.steps
                b = [_to_mpf(ctx, x, digits + GUARD_DIGITS) for x in bps]
                lv = [_to_mpf(ctx, x, digits + GUARD_DIGITS) for x in lvls]
                value = _step_moment(ctx, b, lv, k)
            else:
                exact = self.exact_mean_expr if k == 1 else self.exact_second_expr
                if exact is not None:
                    with SYMPY_LOCK:
                        approx = sp.N(exact, digits + GUARD_DIGITS)
                    value = ctx.mpf(approx)
                else:
                    fn = lambdify(U, self.expr**k)
                    if k == 2:
                        check_square_integrable(fn, 1, what=f"quantizer {self.name!r}")
                    value = gaussian_expectation(fn, 1, digits + 3, kinks=self.kinks, what=f"quantizer {self.name!r}")
        value = freeze(value, digits)
        self._cache[key] = value
        return value

    def mean(self, digits=15):
        """``E Q(g)`` for ``g ~ N(0, 1)`` as an mpf."""
        return self._moment(1, digits)

    def second_moment(self, digits=15):
        """``s^2 = E Q(g)^2`` for ``g ~ N(0, 1)`` as an mpf."""
        return self._moment(2, digits)

    @property
    def is_exact(self):
        """True when mean and ``s^2`` have closed forms (step quantizers and polynomials)."""
        return self.steps is not None or (self.exact_mean_expr is not None and self.exact_second_expr is not None)

    def _is_antisymmetric_steps(self):
        bps, lvls = self.steps
        return _antisymmetric(bps) and _antisymmetric(lvls)

    def check_centered(self, digits=15):
        """Raise :class:`QuantizerError` unless ``E Q(g) = 0``."""
        if self.steps is not None and self._is_antisymmetric_steps():
            nonzero, value = False, 0
        elif self.exact_mean_expr is not None:
            with SYMPY_LOCK:
                nonzero = sp.simplify(self.exact_mean_expr) != 0
            value = self.exact_mean_expr
        else:
            value = self.mean(digits)
            nonzero = abs(value) > mpmath.mpf(10) ** (-digits + 2) * max(1, mpmath.sqrt(self.second_moment(digits)))
        if self.steps is not None:
            # every interval between breakpoints has positive Gaussian probability
            if all(x == 0 for x in self.steps[1]):
                raise QuantizerError(f"quantizer {self.name!r} maps every weight to 0 (s^2 = 0)")
            if nonzero:
                self._refuse_mean(value)
            return self
        if nonzero:
            self._refuse_mean(value)
        if self.second_moment(digits) <= 0:
            raise QuantizerError(f"quantizer {self.name!r} maps every weight to 0 (s^2 = 0)")
        return self

    def _refuse_mean(self, value):
        with SYMPY_LOCK:
            shown = sp.N(value, 6) if isinstance(value, sp.Basic) else mpmath.nstr(value, 6)
        raise QuantizerError(
            f"quantizer {self.name!r} has mean E Q(g) = {shown} != 0; a non-centred quantizer "
            "adds a rank-one spike E[Q] 1 1^T to every weight matrix, which the Gaussian-equivalent "
            "theory does not cover: use a symmetric quantizer (Q(-g) = -Q(g))"
        )

    def __repr__(self):
        return f"Quantizer({self.name!r})"


def _uniform(bits_text, clip_text):
    from .checks import check_scalar

    try:
        bits = check_scalar(bits_text[:40], "uniform quantizer bits", int, min_val=1, max_val=16)
    except (TypeError, ValueError) as exc:
        raise QuantizerError(str(exc)) from None
    clip = (
        _exact_number(clip_text, "uniform quantizer clip")
        if clip_text is not None
        else sp.Integer(DEFAULT_UNIFORM_CLIP)
    )
    if not clip > 0:
        raise QuantizerError(f"uniform quantizer clip must be > 0, got {clip_text!r}")
    half = 2 ** (bits - 1)
    name = f"uniform:{bits}" + (f":{clip_text}" if clip_text is not None else "")
    if isinstance(clip, sp.Rational) and 2**bits > 64:
        # b_j = j Delta and l_j = (j + 1/2) Delta with Delta = 2 clip / 2^bits, as exact Fractions
        # (no closed form is built above 64 levels, so no SymPy number is needed)
        p, q = int(clip.p), int(clip.q)
        breakpoints = [Fraction(j * p, q * half) for j in range(-half + 1, half)]
        levels = [Fraction((2 * j + 1) * p, q * 2 * half) for j in range(-half, half)]
        floats = None
        if max(abs(p), 1) * 2 * half < 2**53 and q * 2 * half < 2**53:
            # integer numerators and denominators below 2^53 are exact floats, and one IEEE division
            # rounds their quotient correctly: the same floats as float(Fraction), without the loop
            j = np.arange(-half + 1, half, dtype=np.float64)
            floats = (j * p / (q * half), (2 * np.arange(-half, half, dtype=np.float64) + 1) * p / (q * 2 * half))
        quantizer = Quantizer._from_steps(name, breakpoints, levels, name, floats=floats)
        object.__setattr__(quantizer, "uniform", (Fraction(p, q * half), half))
        return quantizer
    delta = 2 * clip / 2**bits
    breakpoints = [j * delta for j in range(-half + 1, half)]
    levels = [(j + sp.Rational(1, 2)) * delta for j in range(-half, half)]
    return Quantizer.piecewise(name, breakpoints, levels, spec=name)


_BUILTINS = {
    "none": lambda: Quantizer(
        "none", U, lambda w: np.array(w, dtype=float, copy=True), sp.Integer(0), sp.Integer(1), spec="none"
    ),
    "sign": lambda: Quantizer.piecewise("sign", [0], [-1, 1], spec="sign"),
    "sign-scaled": lambda: Quantizer.piecewise(
        "sign-scaled", [0], [-sp.sqrt(2 / sp.pi), sp.sqrt(2 / sp.pi)], spec="sign-scaled"
    ),
}


def builtin_quantizers():
    """Spec strings of the built-in quantizers."""
    return sorted(_BUILTINS) + ["ternary:<t>", "uniform:<bits>[:<clip>]"]


def get_quantizer(spec) -> Quantizer:
    """Return a validated (centred) :class:`Quantizer` (see :func:`_get_quantizer_cached`).

    ``TypeError`` for a spec that is neither ``None``, a string nor a
    :class:`Quantizer`; :class:`QuantizerError` (a ``ValueError``) for bad specs.
    """
    if isinstance(spec, Quantizer):
        return spec.check_centered()
    if spec is not None and not isinstance(spec, str):
        raise TypeError(f"quantizer must be a string or a Quantizer, got {spec!r} of type {type(spec).__name__}")
    return _get_quantizer_cached(spec)


@lru_cache(maxsize=256)
def _get_quantizer_cached(spec) -> Quantizer:
    """Return a validated (centred) :class:`Quantizer` for a spec string.

    Accepts the built-ins of :func:`builtin_quantizers` and ``expr:<text>``
    for an expression in ``g``.  ``None`` means full precision.  A
    :class:`Quantizer` object is checked and returned as it is;
    ``get_quantizer(q.spec)`` rebuilds ``q`` from its spec string.
    Thresholds and clips are numbers of absolute value at most
    :data:`MAX_QUANTIZER_PARAMETER`.
    """
    if isinstance(spec, Quantizer):
        return spec.check_centered()
    with SYMPY_LOCK:
        return _make_quantizer(spec)


def _make_quantizer(spec) -> Quantizer:
    if spec is None:
        spec = "none"
    if not isinstance(spec, str):
        raise QuantizerError(f"quantizer must be a string, got {type(spec).__name__}")
    text = spec.strip()
    key = text.lower()
    if key in ("full", "fp", "identity"):
        key = "none"
    if key in _BUILTINS:
        return _BUILTINS[key]().check_centered()
    head, _, rest = key.partition(":")
    if head == "ternary":
        t = _exact_number(rest.strip(), "ternary threshold")
        if not t >= 0:
            raise QuantizerError(f"ternary threshold must be >= 0, got {rest!r}")
        name = f"ternary:{rest.strip()}"
        q = Quantizer.piecewise(name, [-t, t], [-1, 0, 1], spec=name) if t > 0 else _BUILTINS["sign"]()
        return q.check_centered()
    if head == "uniform":
        bits_text, _, clip_text = rest.partition(":")
        return _uniform(bits_text.strip(), clip_text.strip() or None).check_centered()
    if head == "expr":
        return Quantizer.from_expression(text.partition(":")[2]).check_centered()
    raise QuantizerError(
        f"unknown quantizer {text!r}; choose from {', '.join(builtin_quantizers())} or expr:<expression in g>"
    )


register_cache(_get_quantizer_cached.cache_clear)
