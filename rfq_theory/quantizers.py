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
standard deviations of the weights).

User quantizers: :meth:`Quantizer.piecewise` (a step function given by
breakpoints and levels: exact moments), :meth:`Quantizer.from_expression`
(a safely parsed expression in ``g``, moments by quadrature unless it is a
polynomial) and :meth:`Quantizer.custom` (a NumPy callable plus a SymPy
expression written in code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Optional, Sequence

import mpmath
import numpy as np
import sympy as sp

from .caches import register_cache
from .expressions import U, ExpressionError, parse_expression
from .gaussian import GUARD_DIGITS, check_square_integrable, gaussian_expectation

__all__ = ["Quantizer", "QuantizerError", "get_quantizer", "builtin_quantizers", "G"]

#: Symbol for a standard Gaussian weight in quantizer expressions.
G = U  # quantizer expressions share the parser's variable symbol

DEFAULT_UNIFORM_CLIP = 3


class QuantizerError(ValueError):
    """Unknown, malformed or unusable quantizer."""


def _std_normal_cdf(x):
    return (1 + sp.erf(x / sp.sqrt(2))) / 2


@dataclass(frozen=True, eq=False)
class Quantizer:
    """An entrywise weight quantizer.

    Attributes
    ----------
    name:
        Canonical spec string.
    expr:
        SymPy expression of ``Q(g)`` in the symbol ``u`` (used for quadrature).
    numpy:
        Vectorised ``W -> Q(W)`` on NumPy arrays.
    exact_mean, exact_second_moment:
        ``E Q(g)`` and ``s^2 = E Q(g)^2`` as SymPy numbers, or ``None``
        where only quadrature is available.
    kinks:
        Jump points of ``Q`` (quadrature splits there).
    """

    name: str
    expr: sp.Expr
    numpy: Callable[[np.ndarray], np.ndarray]
    exact_mean: Optional[sp.Expr] = None
    exact_second_moment: Optional[sp.Expr] = None
    kinks: tuple = ()
    _cache: dict = field(default_factory=dict, repr=False)

    # -- construction helpers ------------------------------------------------

    @classmethod
    def piecewise(cls, name: str, breakpoints: Sequence, levels: Sequence) -> "Quantizer":
        """Step quantizer: ``Q(g) = levels[i]`` for ``breakpoints[i-1] < g <= breakpoints[i]``.

        ``len(levels) == len(breakpoints) + 1``; breakpoints strictly
        increasing.  Mean and ``s^2`` are exact (sums of ``Phi`` differences).
        """
        bps = [sp.nsimplify(b, rational=True) if isinstance(b, float) else sp.sympify(b) for b in breakpoints]
        lvls = [sp.nsimplify(x, rational=True) if isinstance(x, float) else sp.sympify(x) for x in levels]
        if len(lvls) != len(bps) + 1:
            raise QuantizerError(
                f"piecewise quantizer {name!r} needs len(levels) == len(breakpoints) + 1, "
                f"got {len(lvls)} levels and {len(bps)} breakpoints"
            )
        if any(not (b.is_real and b.is_finite) for b in bps) or any(not (x.is_real and x.is_finite) for x in lvls):
            raise QuantizerError(f"piecewise quantizer {name!r}: breakpoints and levels must be finite reals")
        if any(bps[i] >= bps[i + 1] for i in range(len(bps) - 1)):
            raise QuantizerError(f"piecewise quantizer {name!r}: breakpoints must be strictly increasing")
        edges = [-sp.oo] + bps + [sp.oo]
        probs = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            p_hi = 1 if hi == sp.oo else _std_normal_cdf(hi)
            p_lo = 0 if lo == -sp.oo else _std_normal_cdf(lo)
            probs.append(p_hi - p_lo)
        mean = sp.simplify(sum(l * p for l, p in zip(lvls, probs)))
        second = sp.simplify(sum(l**2 * p for l, p in zip(lvls, probs)))
        pieces = [(lvls[i], U <= bps[i]) for i in range(len(bps))] + [(lvls[-1], True)]
        expr = sp.Piecewise(*pieces)
        bps_f = np.array([float(b) for b in bps])
        lv_f = np.array([float(x) for x in lvls])

        def apply(w):
            return lv_f[np.searchsorted(bps_f, w, side="left")]

        return cls(name, expr, apply, mean, second, tuple(float(b) for b in bps))

    @classmethod
    def from_expression(cls, text: str, name: Optional[str] = None) -> "Quantizer":
        """Quantizer from a user expression in ``g`` (or ``w``), parsed safely."""
        try:
            expr = parse_expression(text, variables=("g", "w"), what="quantizer")
        except ExpressionError as exc:
            raise QuantizerError(str(exc)) from None
        return cls.custom(name or text, expr)

    @classmethod
    def custom(cls, name: str, expr: sp.Expr, numpy_fn: Optional[Callable] = None) -> "Quantizer":
        """Quantizer from a SymPy expression in ``u`` (and an optional NumPy callable).

        ``expr`` is trusted code, not user text: parse user text with
        :meth:`from_expression`.  Polynomials get exact moments; everything
        else is integrated numerically.
        """
        from .activations import _kinks, _numpy_from_expr, gaussian_monomial_moment

        if numpy_fn is None:
            numpy_fn = _numpy_from_expr(expr)
        mean = second = None
        if expr.is_polynomial(U):
            poly = sp.Poly(expr, U)
            mom = lambda p: sum(c * gaussian_monomial_moment(m[0], 1) for m, c in zip(p.monoms(), p.coeffs()))
            mean, second = sp.nsimplify(mom(poly)), sp.nsimplify(mom(poly**2))
        return cls(name, expr, numpy_fn, mean, second, _kinks(expr))

    # -- moments -------------------------------------------------------------

    def apply(self, W) -> np.ndarray:
        """Quantize a NumPy array entrywise (what the simulators use)."""
        out = self.numpy(np.asarray(W, dtype=float))
        return np.asarray(out, dtype=float)

    def _moment(self, k, digits):
        key = (k, digits)
        if key not in self._cache:
            exact = self.exact_mean if k == 1 else self.exact_second_moment
            with mpmath.workdps(digits + GUARD_DIGITS):
                if exact is not None:
                    value = mpmath.mpf(sp.N(exact, digits + GUARD_DIGITS))
                else:
                    fn = sp.lambdify(U, self.expr**k, modules="mpmath")
                    if k == 2:
                        check_square_integrable(fn, 1, what=f"quantizer {self.name!r}")
                    value = gaussian_expectation(fn, 1, digits + 3, kinks=self.kinks, what=f"quantizer {self.name!r}")
            self._cache[key] = value
        return self._cache[key]

    def mean(self, digits=15):
        """``E Q(g)`` for ``g ~ N(0, 1)`` as an mpf."""
        return self._moment(1, digits)

    def second_moment(self, digits=15):
        """``s^2 = E Q(g)^2`` for ``g ~ N(0, 1)`` as an mpf."""
        return self._moment(2, digits)

    @property
    def is_exact(self):
        """True when mean and ``s^2`` have closed forms."""
        return self.exact_mean is not None and self.exact_second_moment is not None

    def check_centered(self, digits=15):
        """Raise :class:`QuantizerError` unless ``E Q(g) = 0``."""
        if self.exact_mean is not None:
            nonzero = sp.simplify(self.exact_mean) != 0
            value = self.exact_mean
        else:
            value = self.mean(digits)
            nonzero = abs(value) > mpmath.mpf(10) ** (-digits + 2) * max(1, mpmath.sqrt(self.second_moment(digits)))
        if nonzero:
            raise QuantizerError(
                f"quantizer {self.name!r} has mean E Q(g) = {sp.N(value, 6)} != 0; a non-centred quantizer "
                "adds a rank-one spike E[Q] 1 1^T to every weight matrix, which the Gaussian-equivalent "
                "theory does not cover: use a symmetric quantizer (Q(-g) = -Q(g))"
            )
        if self.second_moment(digits) <= 0:
            raise QuantizerError(f"quantizer {self.name!r} maps every weight to 0 (s^2 = 0)")
        return self

    def __repr__(self):
        return f"Quantizer({self.name!r})"


def _uniform(bits_text, clip_text):
    try:
        bits = int(bits_text)
    except ValueError:
        raise QuantizerError(f"uniform quantizer bits must be an integer, got {bits_text!r}") from None
    if not 1 <= bits <= 16:
        raise QuantizerError(f"uniform quantizer bits must be between 1 and 16, got {bits}")
    try:
        clip = sp.Rational(clip_text) if clip_text is not None else sp.Integer(DEFAULT_UNIFORM_CLIP)
    except (TypeError, ValueError):
        raise QuantizerError(f"uniform quantizer clip must be a number, got {clip_text!r}") from None
    if not clip > 0:
        raise QuantizerError(f"uniform quantizer clip must be > 0, got {clip_text!r}")
    half = 2 ** (bits - 1)
    delta = 2 * clip / 2**bits
    breakpoints = [j * delta for j in range(-half + 1, half)]
    levels = [(j + sp.Rational(1, 2)) * delta for j in range(-half, half)]
    name = f"uniform:{bits}" + (f":{clip_text}" if clip_text is not None else "")
    return Quantizer.piecewise(name, breakpoints, levels)


_BUILTINS = {
    "none": lambda: Quantizer("none", U, lambda w: np.array(w, dtype=float, copy=True), sp.Integer(0), sp.Integer(1)),
    "sign": lambda: Quantizer.piecewise("sign", [0], [-1, 1]),
    "sign-scaled": lambda: Quantizer.piecewise("sign-scaled", [0], [-sp.sqrt(2 / sp.pi), sp.sqrt(2 / sp.pi)]),
}


def builtin_quantizers():
    """Spec strings of the built-in quantizers."""
    return sorted(_BUILTINS) + ["ternary:<t>", "uniform:<bits>[:<clip>]"]


@lru_cache(maxsize=256)
def get_quantizer(spec) -> Quantizer:
    """Return a validated (centred) :class:`Quantizer` for a spec string.

    Accepts the built-ins of :func:`builtin_quantizers` and ``expr:<text>``
    for an expression in ``g``.  ``None`` means full precision.
    """
    if isinstance(spec, Quantizer):
        return spec.check_centered()
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
        try:
            t = sp.Rational(rest)
        except (TypeError, ValueError):
            raise QuantizerError(f"ternary threshold must be a number, got {rest!r}") from None
        if not t >= 0:
            raise QuantizerError(f"ternary threshold must be >= 0, got {rest!r}")
        q = Quantizer.piecewise(f"ternary:{rest}", [-t, t], [-1, 0, 1]) if t > 0 else _BUILTINS["sign"]()
        return q.check_centered()
    if head == "uniform":
        bits_text, _, clip_text = rest.partition(":")
        return _uniform(bits_text.strip(), clip_text.strip() or None).check_centered()
    if head == "expr":
        return Quantizer.from_expression(text.partition(":")[2]).check_centered()
    raise QuantizerError(
        f"unknown quantizer {text!r}; choose from {', '.join(builtin_quantizers())} or expr:<expression in g>"
    )


register_cache(get_quantizer.cache_clear)
