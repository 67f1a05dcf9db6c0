"""Activation registry.

Each built-in activation is one small definition that carries its SymPy
expression, a NumPy implementation (used by the simulators) and, where
they exist, the closed forms of its three Gaussian moments

    E sigma(u),   E[u sigma(u)],   E sigma(u)^2,     u ~ N(0, v),

as SymPy expressions in ``v`` (the style of neural-tangents'
``stax/elementwise.py``).  A moment without a closed form is ``None``
and is computed by quadrature (:mod:`rfq_theory.gaussian`).  Polynomial
activations (built-in or user-written) get exact moments automatically.

Look activations up with :func:`get_activation`, which accepts

- a built-in name: ``linear relu abs sign tanh erf sigmoid gelu silu
  softplus sin cos quadratic cubic``;
- a parameterised built-in: ``leaky_relu:<a>``, ``hermite:<k>``;
- any expression in ``u`` (or ``x``) parsed by
  :func:`rfq_theory.expressions.parse_expression`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import sympy as sp
from scipy import special as _special

from .caches import register_cache
from .expressions import ExpressionError, U, parse_expression
from .precision import SYMPY_LOCK, context, lambdify

__all__ = [
    "Activation",
    "get_activation",
    "builtin_activations",
    "ActivationError",
    "V",
]

#: Symbol for the preactivation variance in closed forms.
V = sp.Symbol("v", positive=True)

Moments = tuple[sp.Expr | None, sp.Expr | None, sp.Expr | None]


class ActivationError(ValueError):
    """Unknown, malformed or unusable activation."""


@dataclass(frozen=True, eq=False)
class Activation:
    """One activation function and everything the solver needs of it.

    Attributes
    ----------
    name:
        Canonical spelling (what :func:`get_activation` was given, normalised).
    expr:
        SymPy expression in the symbol ``u``.
    numpy:
        Vectorised NumPy implementation ``u -> sigma(u)``.
    closed_form:
        ``v -> (E sigma, E u sigma, E sigma^2)`` as SymPy expressions in
        ``v``; an entry is ``None`` where no closed form is known.  ``None``
        for activations with no closed form at all.
    kinks:
        Points (in ``u``) where ``sigma`` or its derivative jumps; the
        quadrature splits there.
    """

    name: str
    expr: sp.Expr
    numpy: Callable[[np.ndarray], np.ndarray]
    closed_form: Callable[[sp.Expr], Moments] | None = None
    kinks: tuple[float, ...] = ()
    builtin: bool = True
    _cache: dict = field(default_factory=dict, repr=False)

    def __reduce__(self):
        """Pickle as the spec string (rebuilt by :func:`get_activation`), e.g. for worker processes.

        Only activations that :func:`get_activation` can rebuild from their
        name pickle; one built in code raises ``TypeError`` naming it.
        """
        try:
            same = get_activation(self.name).expr == self.expr
        except (ValueError, TypeError):
            same = False
        if not same:
            raise TypeError(
                f"activation {self.name!r} was built in code and cannot be pickled; "
                "give it as a spec string (name, name:param or expression in u)"
            )
        return (get_activation, (self.name,))

    def moments_exact(self, v) -> Moments:
        """Closed forms ``(E sigma, E u sigma, E sigma^2)`` at variance ``v``.

        ``v`` may be a number or a SymPy expression.  Entries without a
        closed form are ``None``.
        """
        if self.closed_form is not None:
            forms = self.closed_form(V)
        else:
            forms = (None, None, None)
        a, b, c = (None if f is None else f.subs(V, v) for f in forms)
        return a, b, c

    @property
    def is_affine(self) -> bool:
        """True for ``sigma(u) = a + b u``: the only activations with ``mu_star = 0``."""
        return bool(self.expr.is_polynomial(U)) and sp.degree(self.expr, U) <= 1

    @property
    def is_exact(self) -> bool:
        """True when all three moments have closed forms."""
        return self.closed_form is not None and all(f is not None for f in self.closed_form(V))

    def mpmath(self):
        """The activation as a callable ``u -> sigma(u)`` in this thread's private mpmath context (cached)."""
        key = ("mp", context())
        fn = self._cache.get(key)
        if fn is None:
            fn = self._cache[key] = lambdify(U, self.expr)
        return fn

    def moments_mpmath(self):
        """Closed-form moments as callables ``v -> value`` in this thread's private context (``None`` where absent)."""
        key = ("moments", context())
        fns = self._cache.get(key)
        if fns is None:
            with SYMPY_LOCK:
                forms = self.closed_form(V) if self.closed_form is not None else (None, None, None)
                fns = tuple(None if f is None else lambdify(V, f) for f in forms)
            self._cache[key] = fns
        return fns

    def __call__(self, u):
        """Evaluate with NumPy (what the simulators use)."""
        return self.numpy(np.asarray(u, dtype=float))

    def __repr__(self):
        return f"Activation({self.name!r})"


# --------------------------------------------------------------------------
# Built-ins. Each returns (expr, numpy, closed_form, kinks).
# --------------------------------------------------------------------------

_BUILTINS: dict = {}
_PARAMETERISED: dict = {}


def _builtin(name):
    def deco(fn):
        _BUILTINS[name] = fn
        return fn

    return deco


def _parameterised(name):
    def deco(fn):
        _PARAMETERISED[name] = fn
        return fn

    return deco


def _sqrt(x):
    return sp.sqrt(x)


@_builtin("linear")
def _linear():
    return U, (lambda u: u.copy()), (lambda v: (sp.Integer(0), v, v)), ()


@_builtin("relu")
def _relu():
    closed = lambda v: (_sqrt(v / (2 * sp.pi)), v / 2, v / 2)
    return sp.Max(U, 0), (lambda u: np.maximum(u, 0.0)), closed, (0.0,)


@_builtin("abs")
def _abs():
    closed = lambda v: (_sqrt(2 * v / sp.pi), sp.Integer(0), v)
    return sp.Abs(U), np.abs, closed, (0.0,)


@_builtin("sign")
def _sign():
    closed = lambda v: (sp.Integer(0), _sqrt(2 * v / sp.pi), sp.Integer(1))
    return sp.sign(U), np.sign, closed, (0.0,)


@_builtin("erf")
def _erf():
    # E[u erf(u)] = v E[erf'(u)] = v * 2/sqrt(pi) * E exp(-u^2) = 2v / sqrt(pi (1 + 2v));
    # E erf(u)^2 = (2/pi) asin(2v / (1 + 2v)).
    closed = lambda v: (
        sp.Integer(0),
        2 * v / _sqrt(sp.pi * (1 + 2 * v)),
        2 / sp.pi * sp.asin(2 * v / (1 + 2 * v)),
    )
    return sp.erf(U), _special.erf, closed, ()


@_builtin("tanh")
def _tanh():
    return sp.tanh(U), np.tanh, (lambda v: (sp.Integer(0), None, None)), ()


@_builtin("sigmoid")
def _sigmoid():
    # sigma(u) - 1/2 is odd, so E sigma = 1/2 exactly.
    return 1 / (1 + sp.exp(-U)), _special.expit, (lambda v: (sp.Rational(1, 2), None, None)), ()


@_builtin("gelu")
def _gelu():
    # sigma(u) = u Phi(u).  Stein's lemma E[u h(u)] = v E[h'(u)] gives
    #   E sigma      = v E phi(u)              = v / sqrt(2 pi (1 + v))
    #   E u sigma    = v/2                     (u^2 (Phi - 1/2) is odd)
    #   E sigma^2    = v [E Phi^2 + 2 E u Phi phi],
    # with E Phi(u)^2 = 1/4 + asin(v/(1+v)) / (2 pi) (orthant probability)
    # and E u Phi phi = v E phi^2 / (1 + v) = v / (2 pi (1 + v) sqrt(1 + 2v)).
    phi_cdf = (1 + sp.erf(U / sp.sqrt(2))) / 2
    closed = lambda v: (
        v / _sqrt(2 * sp.pi * (1 + v)),
        v / 2,
        v * (sp.Rational(1, 4) + sp.asin(v / (1 + v)) / (2 * sp.pi) + v / (sp.pi * (1 + v) * _sqrt(1 + 2 * v))),
    )
    return U * phi_cdf, (lambda u: u * 0.5 * (1.0 + _special.erf(u / math.sqrt(2.0)))), closed, ()


@_builtin("silu")
def _silu():
    # u sigmoid(u) = u/2 + u (sigmoid(u) - 1/2): the second part is even, so
    # E[u sigma] = v/2 + 0 exactly.
    return U / (1 + sp.exp(-U)), (lambda u: u * _special.expit(u)), (lambda v: (None, v / 2, None)), ()


@_builtin("softplus")
def _softplus():
    return sp.log(1 + sp.exp(U)), (lambda u: np.logaddexp(0.0, u)), None, ()


@_builtin("sin")
def _sin():
    closed = lambda v: (sp.Integer(0), v * sp.exp(-v / 2), (1 - sp.exp(-2 * v)) / 2)
    return sp.sin(U), np.sin, closed, ()


@_builtin("cos")
def _cos():
    closed = lambda v: (sp.exp(-v / 2), sp.Integer(0), (1 + sp.exp(-2 * v)) / 2)
    return sp.cos(U), np.cos, closed, ()


@_builtin("quadratic")
def _quadratic():
    return U**2, (lambda u: u * u), None, ()


@_builtin("cubic")
def _cubic():
    return U**3, (lambda u: u * u * u), None, ()


@_parameterised("leaky_relu")
def _leaky_relu(param):
    a = _parse_number(param, "leaky_relu slope")
    a_f = float(a)
    closed = lambda v: ((1 - a) * _sqrt(v / (2 * sp.pi)), (1 + a) * v / 2, (1 + a**2) * v / 2)
    expr = sp.Piecewise((U, U >= 0), (a * U, True))
    return expr, (lambda u: np.where(u >= 0, u, a_f * u)), closed, (0.0,)


@_parameterised("hermite")
def _hermite(param):
    from .checks import check_scalar

    try:
        k = check_scalar(param[:40], "hermite degree", int, min_val=0, max_val=40)
    except (TypeError, ValueError) as exc:
        raise ActivationError(str(exc)) from None
    expr = sp.hermite_prob(k, U)
    coeffs = [float(c) for c in sp.Poly(expr, U).all_coeffs()]
    return expr, (lambda u: np.polyval(coeffs, u)), None, ()


#: Largest absolute value of an activation parameter (``leaky_relu:<a>``).
MAX_ACTIVATION_PARAMETER = 1e100


def _parse_number(text, what):
    """A finite real parameter given as text, read by the safe parser (|x| <= MAX_ACTIVATION_PARAMETER)."""
    try:
        value = parse_expression(text, variables=(), what=what)
    except ExpressionError as exc:
        raise ActivationError(f"{what} must be a number, got {text!r} ({exc})") from None
    if not (value.is_number and value.is_real and value.is_finite):
        raise ActivationError(f"{what} must be a finite real number, got {text!r}")
    if abs(float(value)) > MAX_ACTIVATION_PARAMETER:
        raise ActivationError(f"{what} must be at most {MAX_ACTIVATION_PARAMETER:g} in absolute value, got {text!r}")
    return value


# --------------------------------------------------------------------------
# Exact moments of polynomials
# --------------------------------------------------------------------------


def gaussian_monomial_moment(n: int, v):
    """``E u^n`` for ``u ~ N(0, v)``: ``v^(n/2) (n-1)!!`` for even ``n``, else 0."""
    if n % 2:
        return sp.Integer(0)
    return v ** sp.Rational(n, 2) * sp.factorial2(n - 1)


def _polynomial_closed_form(expr):
    poly = sp.Poly(expr, U)

    def moment(p, v):
        return sp.expand(sum(c * gaussian_monomial_moment(m[0], v) for m, c in zip(p.monoms(), p.coeffs())))

    def closed(v):
        return (moment(poly, v), moment(poly * sp.Poly(U, U), v), moment(poly**2, v))

    return closed


def _is_polynomial(expr):
    return bool(expr.is_polynomial(U))


# --------------------------------------------------------------------------
# Kinks of user expressions
# --------------------------------------------------------------------------


def _unfold_abs(expr, depth=0):
    """Variants of ``expr`` with each Abs(x) replaced by +-x and sign(x) by +-1."""
    node = next((n for n in sp.preorder_traversal(expr) if isinstance(n, (sp.Abs, sp.sign, sp.Max, sp.Min))), None)
    if node is None or depth > 4:
        return [expr]
    if isinstance(node, sp.Abs):
        repl = (node.args[0], -node.args[0])
    elif isinstance(node, (sp.Max, sp.Min)):  # on each piece one argument is active
        repl = tuple(node.args)
    else:
        repl = (sp.Integer(1), sp.Integer(-1))
    out = []
    for r in repl:
        out.extend(_unfold_abs(expr.xreplace({node: r}), depth + 1))
    return out


def _kinks(expr):
    """Real points where an Abs/sign/Heaviside/Max/Min/Piecewise switches."""
    args = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Abs, sp.sign, sp.Heaviside)):
            args.append(node.args[0])
        elif isinstance(node, (sp.Max, sp.Min)):
            items = list(node.args)
            args.extend(a - b for i, a in enumerate(items) for b in items[i + 1 :])
        elif isinstance(node, sp.Piecewise):
            for _, cond in node.args:
                if isinstance(cond, sp.core.relational.Relational):
                    args.append(cond.lhs - cond.rhs)
    points = set()
    for a in args:
        if not a.has(U):
            continue
        for variant in _unfold_abs(a):
            try:
                if variant.is_polynomial(U) and 1 <= sp.degree(variant, U) <= 4:
                    for r in sp.Poly(variant, U).nroots(n=15, maxsteps=200):
                        if abs(sp.im(r)) < 1e-12 and abs(sp.re(r)) < 1e15:
                            points.add(float(sp.re(r)))
            except Exception:  # NoConvergence, PolynomialError...: no kink found there
                pass
    points.add(0.0)
    return tuple(sorted(points))


# --------------------------------------------------------------------------
# Look-up
# --------------------------------------------------------------------------


def builtin_activations():
    """Names of the built-in activations (parameterised ones with ``:<p>``)."""
    return sorted(_BUILTINS) + [f"{n}:<p>" for n in sorted(_PARAMETERISED)]


def _numpy_from_expr(expr):
    modules = [{"erf": _special.erf, "Heaviside": lambda x, h=0.5: np.heaviside(x, h)}, "numpy"]
    fn = sp.lambdify(U, expr, modules=modules)

    def call(u):
        out = fn(u)
        return np.broadcast_to(np.asarray(out, dtype=float), np.shape(u)).copy()

    return call


def get_activation(spec) -> Activation:
    """Return the :class:`Activation` for a name, ``name:param`` or expression.

    Raises :class:`ActivationError` (a ``ValueError``) with a one-line
    message for unknown names, bad parameters and rejected expressions, and
    ``TypeError`` for a spec that is neither a string nor an
    :class:`Activation` (e.g. a list).  Thread-safe.
    """
    if isinstance(spec, Activation):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"activation must be a string or an Activation, got {spec!r} of type {type(spec).__name__}")
    return _get_activation_cached(spec)


@lru_cache(maxsize=256)
def _get_activation_cached(spec) -> Activation:
    """Return the :class:`Activation` for a name, ``name:param`` or expression.

    Raises :class:`ActivationError` (a ``ValueError``) with a one-line
    message for unknown names, bad parameters and rejected expressions.
    Thread-safe (SymPy work runs under :data:`rfq_theory.precision.SYMPY_LOCK`).
    """
    if isinstance(spec, Activation):
        return spec
    with SYMPY_LOCK:
        return _make_activation(spec)


def _make_activation(spec) -> Activation:
    if not isinstance(spec, str):
        raise ActivationError(f"activation must be a string, got {type(spec).__name__}")
    text = spec.strip()
    key = text.lower()
    if key in _BUILTINS:
        expr, np_fn, closed, kinks = _BUILTINS[key]()
        if closed is None and _is_polynomial(expr):
            closed = _polynomial_closed_form(expr)
        return Activation(key, expr, np_fn, closed, kinks or ())
    if ":" in key:
        head, _, param = key.partition(":")
        if head in _PARAMETERISED:
            expr, np_fn, closed, kinks = _PARAMETERISED[head](param.strip())
            if closed is None and _is_polynomial(expr):
                closed = _polynomial_closed_form(expr)
            return Activation(f"{head}:{param.strip()}", expr, np_fn, closed, kinks or ())
        if head.isidentifier():
            raise ActivationError(
                f"unknown parameterised activation {head!r}; choose from {', '.join(sorted(_PARAMETERISED))}"
            )
        try:
            parse_expression(text, variables=("u", "x"), what="activation")
        except ExpressionError as exc:
            raise ActivationError(str(exc)) from None
        raise ActivationError(f"activation {text!r} is not a built-in, name:param or expression in u")
    try:
        expr = parse_expression(text, variables=("u", "x"), what="activation")
    except ExpressionError as exc:
        if text.isidentifier():
            raise ActivationError(
                f"unknown activation {text!r}; built-ins: {', '.join(builtin_activations())}, or an expression in u"
            ) from None
        raise ActivationError(str(exc)) from None
    closed = _polynomial_closed_form(expr) if _is_polynomial(expr) else _symmetry_closed_form(expr)
    return Activation(text, expr, _numpy_from_expr(expr), closed, _kinks(expr), builtin=False)


def _symmetry_closed_form(expr):
    """Exact zeros from parity: odd sigma has E sigma = 0, even sigma has E u sigma = 0."""
    flipped = expr.xreplace({U: -U})
    try:
        odd = sp.simplify(flipped + expr) == 0
        even = not odd and sp.simplify(flipped - expr) == 0
    except Exception:  # pragma: no cover - SymPy could not decide
        return None
    if odd:
        return lambda v: (sp.Integer(0), None, None)
    if even:
        return lambda v: (None, sp.Integer(0), None)
    return None


register_cache(_get_activation_cached.cache_clear)
