"""Precision policy: private mpmath contexts, frozen result numbers, one SymPy lock.

mpmath keeps its working precision in the global context ``mpmath.mp``,
which every thread of the process shares.  rfq_theory never reads or sets
it:

- :func:`context` returns this thread's private ``mpmath.MPContext``; every
  high-precision computation of the package runs in it (precision raised
  locally with ``ctx.workdps``), so concurrent calls with different
  ``digits`` cannot disturb each other, and a user's ``mpmath.mp.dps``
  changes nothing.  :data:`mp` is a stand-in for the ``mpmath`` module
  whose attributes resolve in the calling thread's private context.
- :func:`freeze` turns a number into an ``mpmath.mpf`` (a subclass of it)
  bound to a context of fixed precision that nothing ever changes:
  arithmetic on cached or returned numbers is therefore deterministic, and
  ``str()`` of a result prints the digits it was computed to.
- SymPy's numerical evaluation (``evalf``, ``nroots``) temporarily changes
  the global mpmath precision; :data:`SYMPY_LOCK` serialises every SymPy
  step of the package so that two threads never interleave there.
- :func:`lambdify` compiles a SymPy expression to a function evaluated in
  the calling thread's private context.

Guard digits: public entry points (``coefficients``, ``propagate``,
``predict``) add :data:`rfq_theory.gaussian.GUARD_DIGITS` once to the
requested digits; internal functions receive the working digits.
"""

from __future__ import annotations

import threading
from typing import TypeAlias

import mpmath
from mpmath.ctx_mp_python import _mpf

#: The type of an mpmath number, for annotations (``mpmath.mpf`` and its frozen-precision subclasses).
MPF: TypeAlias = mpmath.mpf

__all__ = [
    "context",
    "mp",
    "freeze",
    "frozen_context",
    "SYMPY_LOCK",
    "lambdify",
    "is_mpf",
    "gauss_legendre_nodes",
    "MPF",
]

#: Serialises SymPy's symbolic and numerical work (it changes the global
#: mpmath precision inside ``evalf``); re-entrant.
SYMPY_LOCK = threading.RLock()

_local = threading.local()
_frozen_lock = threading.Lock()
_FROZEN: dict = {}


def context() -> mpmath.MPContext:
    """This thread's private mpmath context (created on first use, 15 digits by default)."""
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = mpmath.MPContext()
        _local.ctx = ctx
    return ctx


class _ModuleProxy:
    """``mpmath``-like namespace resolving in the calling thread's private context.

    ``mp.fp`` is mpmath's (stateless) float context and ``mp.mp`` the
    private context itself.
    """

    fp = mpmath.fp

    @property
    def mp(self):
        return context()

    def __getattr__(self, name):
        return getattr(context(), name)


#: Drop-in for the ``mpmath`` module inside rfq_theory (see the module docstring).
mp = _ModuleProxy()


def is_mpf(x) -> bool:
    """True for an mpmath real of any context."""
    return isinstance(x, _mpf)


def frozen_context(dps: int):
    """A context of fixed ``dps`` digits whose precision nothing changes, and its mpf type."""
    dps = int(dps)
    entry = _FROZEN.get(dps)
    if entry is None:
        with _frozen_lock:
            entry = _FROZEN.get(dps)
            if entry is None:
                ctx = mpmath.MPContext()
                ctx.dps = dps
                cls = type("mpf", (mpmath.mpf,), {"__reduce__": _reduce_frozen, "__module__": __name__})
                cls._ctxdata = [cls, object.__new__, ctx._prec_rounding]  # type: ignore[attr-defined]
                cls.context = ctx  # type: ignore[attr-defined]
                entry = (ctx, cls)
                _FROZEN[dps] = entry
    return entry


def _reduce_frozen(x):
    """Pickle a frozen number as its exact value and precision (rebuilt by :func:`_restore_frozen`)."""
    return (_restore_frozen, (x._mpf_, x.context.dps))


def _restore_frozen(value, dps):
    """The frozen number of precision ``dps`` with the exact mpmath value tuple ``value``."""
    _ctx, cls = frozen_context(dps)
    out = object.__new__(cls)
    out._mpf_ = value
    return out


def freeze(x, dps: int):
    """``x`` (an mpmath number, int or float) as an ``mpmath.mpf`` of fixed precision ``dps``.

    The value is kept exactly when it already has at most ``dps`` digits
    (otherwise it is rounded to ``dps``); ``None`` and Python floats pass
    through unchanged.  Arithmetic on the result runs at ``dps`` digits and
    ``str()`` prints ``dps`` significant digits.
    """
    if x is None or isinstance(x, float):
        return x
    ctx, cls = frozen_context(dps)
    if not hasattr(x, "_mpf_"):
        x = context().convert(x)
    if not hasattr(x, "_mpf_"):  # complex: keep the real part only if exact
        raise TypeError(f"expected a real number, got {x!r}")
    out = object.__new__(cls)
    out._mpf_ = x._mpf_
    return +out  # rounds to dps when it had more bits


_NAMESPACES: dict = {}


def gauss_legendre_nodes(degree: int) -> list:
    """mpmath's Gauss-Legendre nodes and weights of ``degree`` on ``[-1, 1]`` at this thread's precision.

    ``degree`` is mpmath's level: ``3 * 2**(degree - 1)`` nodes.
    """
    from mpmath.calculus.quadrature import GaussLegendre

    ctx = context()
    return GaussLegendre(ctx).calc_nodes(degree, ctx.prec)


def _namespace(ctx):
    ns = _NAMESPACES.get(id(ctx))
    if ns is None or ns[0] is not ctx:
        names = {}
        for name in dir(mpmath):
            if name.startswith("_"):
                continue
            try:
                names[name] = getattr(ctx, name)
            except AttributeError:
                continue
        ns = (ctx, names)
        _NAMESPACES[id(ctx)] = ns
    return ns[1]


def lambdify(symbol, expr):
    """``sympy.lambdify(symbol, expr)`` evaluated in the calling thread's private context.

    The returned function is bound to that context: call it from the same
    thread (callers cache one per context, see :func:`context`).
    """
    import sympy as sp

    with SYMPY_LOCK:
        return sp.lambdify(symbol, expr, modules=[_namespace(context()), "mpmath"])
