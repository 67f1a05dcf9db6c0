"""Convex losses of the readout and their proximal operators.

For ``+-1`` labels every loss used here depends on the *margin*
``u = y t`` only, ``loss(y, t) = ell(y t)``:

- ``square``:   ``ell(u) = (1 - u)^2``     (``(y - t)^2`` with ``y^2 = 1``)
- ``logistic``: ``ell(u) = log(1 + exp(-u))``
- ``hinge``:    ``ell(u) = max(0, 1 - u)``

The proximal operator of ``V loss(y, .)`` at ``omega``,

    prox(omega) = argmin_t [ loss(y, t) + (t - omega)^2 / (2 V) ],

is ``y u`` with ``u`` the proximal point of ``V ell`` at the margin
``a = y omega``, i.e. the root of ``u + V ell'(u) = a``:

- ``square``:   ``u = (a + 2V) / (1 + 2V)``                     (exact)
- ``hinge``:    ``u = a + V`` if ``a <= 1 - V``, ``1`` if ``1 - V < a < 1``, ``a`` if ``a >= 1``  (exact)
- ``logistic``: ``u - V sigmoid(-u) = a``, solved by Newton's method
  (the left side is increasing; the root lies in ``[a, a + V]``).

Two number types are served by the same functions: NumPy ``float64``
arrays (the fast path) and NumPy object arrays of ``mpmath.mpf`` (any
precision; the caller sets the precision of this thread's private context,
``rfq_theory.precision.mp.workdps(...)``, as :mod:`rfq_theory.glm` does; the
global ``mpmath.mp`` is never read or set).
:func:`ops` returns the elementwise functions for each.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from .checks import InputError
from .precision import context
from .precision import mp as mpmath

__all__ = [
    "LOSSES",
    "check_loss",
    "ops",
    "margin_prox",
    "margin_loss",
    "margin_dprox",
    "margin_threshold",
]

#: Losses of the readout.
LOSSES = ("square", "logistic", "hinge")


def check_loss(loss) -> str:
    """Validate a loss name; returns it."""
    if not isinstance(loss, str) or loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    return loss


def _mp_sigmoid(x):
    if x >= 0:
        return 1 / (1 + mpmath.exp(-x))
    e = mpmath.exp(x)
    return e / (1 + e)


def _mp_softplus(x):
    """``log(1 + exp(x))`` without overflow or cancellation."""
    if x > 0:
        return x + mpmath.log1p(mpmath.exp(-x))
    return mpmath.log1p(mpmath.exp(x))


def _float_ops():
    from scipy.special import expit, ndtr

    return SimpleNamespace(
        kind="float",
        sigmoid=expit,
        softplus=lambda x: np.logaddexp(0.0, x),
        ncdf=ndtr,
        npdf=lambda x: np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi),
        exp=np.exp,
        sqrt=np.sqrt,
        asarray=lambda x: np.asarray(x, dtype=float),
        one=1.0,
        pi=np.pi,
    )


def _mp_ops():
    vec = lambda f: np.frompyfunc(f, 1, 1)  # noqa: E731
    return SimpleNamespace(
        kind="mp",
        sigmoid=vec(_mp_sigmoid),
        softplus=vec(_mp_softplus),
        ncdf=vec(lambda x: mpmath.erfc(-x / mpmath.sqrt(2)) / 2),
        npdf=vec(lambda x: mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)),
        exp=vec(mpmath.exp),
        sqrt=vec(mpmath.sqrt),
        asarray=lambda x: np.asarray(x, dtype=object),
        one=mpmath.mpf(1),
        pi=None,
    )


_OPS: dict[str, Any] = {}


def ops(kind: str):
    """Elementwise functions for ``"float"`` (float64 arrays) or ``"mp"`` (object arrays of mpf).

    The mp functions belong to the calling thread's private context and read
    its working precision at call time.
    """
    if kind == "float":
        if "float" not in _OPS:
            _OPS["float"] = _float_ops()
        return _OPS["float"]
    ctx = context()  # mp functions bound to this thread's private context, kept on that context
    found = getattr(ctx, "_rfq_mp_ops", None)
    if found is None:
        found = _mp_ops()
        ctx._rfq_mp_ops = found
    return found


def margin_prox(loss, a, V, xp, tol=None, max_iter=200, guess=None):
    """Proximal point ``u`` of ``V ell`` at margins ``a`` (array): the root of ``u + V ell'(u) = a``.

    Exact for ``square`` and ``hinge``; Newton's method for ``logistic``
    (monotone, started at ``a + V sigmoid(-a)``, inside a bracket of the root
    that starts as ``[a, a + V]``, bisecting where a Newton step leaves it; ``guess`` replaces the start, e.g. float-path values
    for the mp path) until the step is below ``tol`` (default: 1e-15 on the
    float path, ``10^-(dps+3)`` relative on the mp path).  Raises
    ``ArithmeticError`` if Newton's method does not converge.
    """
    a = xp.asarray(a)
    if loss == "square":
        return (a + 2 * V) / (1 + 2 * V)
    if loss == "hinge":
        out = np.where(a >= 1, a, a + V)
        return np.where((a > 1 - V) & (a < 1), xp.one + 0 * a, out)
    if loss != "logistic":
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if tol is None:
        tol = 1e-14 if xp.kind == "float" else mpmath.mpf(10) ** (-(mpmath.mp.dps - 3))
    u = a + V * xp.sigmoid(-a) if guess is None else guess
    lo, hi = a, a + V
    older = last = np.abs(hi - lo) * 4 + 1
    for _ in range(max_iter):
        s = xp.sigmoid(-u)
        g = u - V * s - a
        dg = 1 + V * s * (1 - s)
        # g is increasing: keep a bracket [lo, hi] of the root, bisect where Newton leaves it
        lo = np.where(g < 0, u, lo)
        hi = np.where(g > 0, u, hi)
        newton = g / dg
        step = np.abs(newton)  # the Newton correction at u: the error of u, to first order
        scale = np.abs(u) + 1
        if xp.kind == "float":
            if np.all(step <= tol * scale):
                return u - newton
        elif all(st <= tol * sc for st, sc in zip(step, scale)):
            return u - newton
        new = u - newton
        # bisect where Newton leaves the bracket or does not halve the step before last (rtsafe rule)
        bad = (new < lo) | (new > hi) | (2 * step > older)
        new = np.where(bad, (lo + hi) / 2, new)
        new = np.where(step <= tol * scale, u - newton, new)  # converged points stay put
        older, last = last, np.abs(new - u)
        u = new
    if xp.kind == "float" and np.all(step <= 1e-12 * scale):
        return u - newton  # rounding-level oscillation of the last Newton steps
    raise ArithmeticError(f"the logistic proximal operator did not converge in {max_iter} Newton steps")


def margin_loss(loss, u, xp):
    """``ell(u)`` elementwise."""
    if loss == "square":
        return (1 - u) ** 2
    if loss == "logistic":
        return xp.softplus(-u)
    if loss == "hinge":
        return np.where(u < 1, 1 - u, 0 * u)
    raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def margin_dprox(loss, u, a, V, xp):
    """``du/da = 1 / (1 + V ell''(u))`` (hinge: 0 on the flat piece ``1 - V < a < 1``, else 1)."""
    if loss == "square":
        return 0 * u + 1 / (1 + 2 * V)
    if loss == "logistic":
        s = xp.sigmoid(u)
        return 1 / (1 + V * s * (1 - s))
    if loss == "hinge":
        return np.where((a > 1 - V) & (a < 1), 0 * u, 0 * u + 1)
    raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def margin_threshold(loss, V):
    """The margin ``a0`` with ``u(a0) = 0``: training points with ``y omega < a0`` are misclassified.

    ``square``: ``-2V``; ``logistic``: ``-V/2``; ``hinge``: ``-V``.
    """
    if loss == "square":
        return -2 * V
    if loss == "logistic":
        return -V / 2
    if loss == "hinge":
        return -V
    raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
