"""The layer chain of the fixed-point equations, written once for every number type.

With sizes ``k_0..k_L``, ``a_l = kappa1_l^2`` and ``c_l = kappastar_l^2``
(``docs/theory.md``, sections 3-4) the effective ridges obey::

    base:   D_0 = df1_0(kappa_0) = k_0 c_0 / (c_0 + kappa_0)                    (c_0 = 1)
            (structured inputs: D_0 = sum_i lambda_i / (lambda_i + kappa_0))
    layer:  kappa_l = a_l kappa_{l-1} (k_l - D_{l-1}) / k_{l-1} - c_l
            D_l     = df1_l(kappa_l) = k_l - k_{l-1} kappa_l / (a_l kappa_{l-1})
                    = D_{l-1} + c_l k_{l-1} / (a_l kappa_{l-1})

The last line is the cancellation-free form of ``D_l`` (both terms are
positive on the physical branch); every walk here uses it.  Given
``kappa_0`` the chain is walked upward in closed form (:func:`walk`),
carrying the derivatives ``d kappa_l / d kappa_0`` and
``d D_l / d kappa_0`` (forward-mode implicit differentiation).

One implementation serves every *arithmetic* (an :class:`Arithmetic`
object says how to compare, bound and take square roots of its numbers):

- :data:`FLOAT` (Python floats) and :func:`real` of a private mpmath
  context at any precision (scalars; the walk stops at the first
  ``kappa_l <= 0``);
- :data:`LANES` (NumPy float arrays, one lane per point; masks mark the
  lanes outside the physical branch);
- double-double lanes (:mod:`rfq_theory._ddwalk`, the same walk on its
  number class);
- :data:`COMPLEX` (complex scalars or arrays: the chain continued to
  complex arguments for the spectra; no branch test).

Besides the walk the module holds the chain data (:class:`Chain`,
:func:`build_chain`, the rank of ``Omega_L``), the scalar equations in
``kappa_0`` (:func:`ridge_equation`, :func:`ridgeless_equation`), the
lower end of the physical branch (:func:`branch_edge` and its lane twin
:func:`branch_edge_lanes`) and one safeguarded Newton-bisection root
finder (:func:`rtsafe`, lane twin :func:`rtsafe_lanes`, one step rule
:func:`_rtsafe_step`).  A layer with ``kappa1_l = 0`` restarts the chain
from ``Omega_l = c_l I`` and erases the signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .checks import InputError
from .precision import mp as mpmath

__all__ = [
    "SolverError",
    "Arithmetic",
    "FLOAT",
    "LANES",
    "COMPLEX",
    "real",
    "Chain",
    "build_chain",
    "omega_rank",
    "select_lanes",
    "WalkState",
    "walk",
    "walk_state",
    "layer_residuals",
    "ridge_equation",
    "ridgeless_equation",
    "branch_edge",
    "branch_edge_lanes",
    "bracket_above",
    "bracket_above_lanes",
    "rtsafe",
    "rtsafe_lanes",
]

#: smallest ``kappa_0`` tried on float paths (its square does not underflow)
TINY = 1e-150
EPS = float(np.finfo(float).eps)


class SolverError(ArithmeticError):
    """The fixed-point equations have no physical solution or did not converge."""


# --------------------------------------------------------------------------
# Arithmetics
# --------------------------------------------------------------------------


class Arithmetic:
    """How the chain's algorithms treat one number type.

    ``lanes``: arrays of independent points (masks instead of early exits);
    ``ordered``: real numbers, so the branch test ``kappa_l > 0`` applies;
    ``condition``: track the cancellation bound of the walk.
    """

    lanes = False
    ordered = True
    condition = True

    @property
    def eps(self):
        """Unit roundoff of the working precision."""
        return EPS

    def tiny(self):
        """Smallest ``kappa_0`` tried by the edge search."""
        return TINY

    def sqrt(self, x):
        return math.sqrt(x)

    def maximum(self, a, b):
        return a if a >= b else b

    def where(self, cond, a, b):
        return a if cond else b

    def divide(self, a, b):
        """``a / b``; NaN where ``b = 0`` (a Newton step that is never taken)."""
        return a / b if b != 0 else self.nan

    nan = math.nan


class _Real(Arithmetic):
    """Scalars of one mpmath context (``mpmath.fp`` for floats, else a private context)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.is_float = ctx is mpmath.fp

    @property
    def eps(self):
        return EPS if self.is_float else self.ctx.eps

    @property
    def nan(self):
        return math.nan if self.is_float else self.ctx.nan

    def tiny(self):
        return TINY if self.is_float else self.ctx.mpf(10) ** (-2 * self.ctx.dps - 50)

    def sqrt(self, x):
        return math.sqrt(x) if self.is_float else self.ctx.sqrt(x)


class _Lanes(Arithmetic):
    """NumPy float arrays, one lane per point."""

    lanes = True

    def sqrt(self, x):
        return np.sqrt(np.abs(x))

    def maximum(self, a, b):
        return np.maximum(a, b)

    def where(self, cond, a, b):
        return np.where(cond, a, b)

    def divide(self, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return a / b


class _Complex(Arithmetic):
    """Complex scalars (mpc, complex) or arrays: the chain at complex ``kappa_0`` (no branch test)."""

    ordered = False
    condition = False


#: Python floats.
FLOAT = _Real(mpmath.fp)
#: NumPy float lanes.
LANES = _Lanes()
#: complex numbers (scalars or arrays).
COMPLEX = _Complex()


def real(ctx=None) -> Arithmetic:
    """Scalars of the mpmath context ``ctx`` (default: this thread's private context)."""
    if ctx is None:
        ctx = mpmath.mp
    return FLOAT if ctx is mpmath.fp else _Real(ctx)


# --------------------------------------------------------------------------
# The chain data
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """Numbers entering the fixed-point equations, in one number type.

    ``layers`` holds ``(k_{l-1}, k_l, a_l = kappa1_l^2, c_l = kappastar_l^2)``
    for the layers after the last restart; ``first`` is the index of the
    base (0 unless a layer has ``kappa1 = 0``), ``base_dim = k_first`` and
    ``base_scale = c_0`` (1, or ``kappastar_first^2`` after a restart);
    ``signal`` is False after a restart; ``rank`` is the rank of ``Omega_L``
    (the interpolation threshold of the ridgeless estimator).  Sizes may be
    arrays (one entry per lane) while ``a_l`` and ``c_l`` are shared.
    ``measure`` is the base of a structured input
    (:class:`~rfq_theory.input_spectrum.BaseMeasure`: ``D_0 = df1_0(kappa_0)``
    from the spectrum of ``Sigma``), ``None`` for ``Omega_0 = c_0 I``.
    """

    base_dim: Any
    base_scale: Any
    signal: bool
    layers: tuple
    first: int
    rank: Any
    measure: Any = None

    @property
    def top_size(self):
        """``k_L``, the size of the chain's top matrix."""
        return self.layers[-1][1] if self.layers else self.base_dim


def omega_rank(base_dim, layers, minimum=min):
    """``rank Omega_L``: ``k_l`` after a layer with ``c_l > 0``, else ``min(k_l, rank Omega_{l-1})``."""
    rank = base_dim
    for _k_prev, k, _a, c in layers:
        rank = k if c > 0 else minimum(k, rank)
    return rank


def build_chain(sizes, layer_coeffs, to_number=float, dps=16, measure=None) -> Chain:
    """Assemble a :class:`Chain` from sizes ``(k_0..k_L)`` and per-layer coefficients.

    A layer with ``kappa1^2 <= kappastar^2 10^(-2 dps)`` (``dps``: the working
    digits) counts as ``kappa1 = 0`` and restarts the chain (and drops the
    input's base ``measure``).
    """
    first, base_dim, base_scale, signal = 0, to_number(sizes[0]), to_number(1), True
    for index, lc in enumerate(layer_coeffs, start=1):
        a = to_number(lc.kappa1) ** 2
        c = to_number(lc.kappa_star) ** 2
        if a == 0 or a <= c * to_number(mpmath.mpf(10) ** (-2 * dps)):
            if c == 0:
                raise InputError(
                    f"layer {index} ({lc.activation}) outputs a constant: kappa1 = kappa_star = 0, "
                    "the model's features carry nothing"
                )
            first, base_dim, base_scale, signal = index, to_number(sizes[index]), c, False
    layers = []
    for index in range(first + 1, len(sizes)):
        lc = layer_coeffs[index - 1]
        layers.append(
            (
                to_number(sizes[index - 1]),
                to_number(sizes[index]),
                to_number(lc.kappa1) ** 2,
                to_number(lc.kappa_star) ** 2,
            )
        )
    if first > 0:
        measure = None
    base_rank = base_dim if measure is None else to_number(measure.rank)
    return Chain(base_dim, base_scale, signal, tuple(layers), first, omega_rank(base_rank, layers), measure)


def select_lanes(chain: Chain, idx) -> Chain:
    """The chain of the lanes ``idx`` (array fields indexed, shared coefficients kept)."""

    def take(v):
        return v[idx] if isinstance(v, np.ndarray) or hasattr(v, "hi") else v

    layers = tuple(tuple(take(v) for v in layer) for layer in chain.layers)
    return replace(chain, base_dim=take(chain.base_dim), layers=layers, rank=take(chain.rank))


# --------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------


@dataclass
class WalkState:
    """Result of walking the chain upward from ``kappa_0``.

    ``kappas[l]`` and ``dkappas[l] = d kappa_l / d kappa_0`` for the chain's
    layers (index 0 is the base), ``df1 = D_L`` and ``ddf1 = d D_L / d kappa_0``
    of the top layer.  ``cancellation`` bounds the factor by which rounding
    errors were amplified by subtractions of nearly equal numbers
    (``k_l - D_{l-1}`` and ``kappa_l = (...) - c_l``).  ``valid``: every
    ``kappa_l > 0``; ``valid_below``: every ``kappa_l > 0`` for ``l < L``
    (masks on lanes).  ``dfs[l] = D_l`` for every layer walked.
    """

    kappas: list
    dkappas: list
    df1: Any
    ddf1: Any
    cancellation: Any = 1
    valid: Any = True
    valid_below: Any = True
    dfs: list = None  # type: ignore[assignment]

    @property
    def kappa(self):
        """``kappa_L``."""
        return self.kappas[-1]

    @property
    def dkappa(self):
        """``d kappa_L / d kappa_0``."""
        return self.dkappas[-1]


def walk_state(chain: Chain, kappa0, ar: Arithmetic = FLOAT) -> WalkState:
    """Walk the layer equations upward from ``kappa_0`` (module docstring) in the arithmetic ``ar``.

    Scalars stop at the first layer ``l < L`` with ``kappa_l <= 0``
    (``valid`` and ``valid_below`` False); the top layer is always
    computed when the layers below it are valid.
    """
    if chain.measure is not None:
        D, dD = chain.measure.df1(kappa0)
    else:
        c0 = chain.base_scale
        den = c0 + kappa0
        D = chain.base_dim * c0 / den
        dD = -D / den
    kap, dkap = kappa0, kappa0 * 0 + 1
    kappas, dkappas, dfs = [kap], [dkap], [D]
    cancel: Any
    valid: Any
    below: Any
    if ar.lanes:
        shape = np.shape(getattr(kappa0, "hi", kappa0))
        cancel, valid, below = np.ones(shape), np.ones(shape, dtype=bool), np.ones(shape, dtype=bool)
    else:
        cancel, valid, below = 1, True, True
    last = len(chain.layers) - 1
    for index, (k_prev, k, a, c) in enumerate(chain.layers):
        gap = k - D
        new = a * kap * gap / k_prev - c
        if ar.ordered:
            below = valid
            if ar.lanes:
                valid = valid & (new > 0)
            elif not new > 0:
                valid = False
                if index < last:
                    return WalkState(kappas, dkappas, D, dD, cancel, False, False, dfs)
            if ar.condition and ar.lanes:
                with np.errstate(divide="ignore", invalid="ignore"):
                    cancel = cancel * np.maximum(1.0, np.maximum(k, k_prev) / gap) * (1.0 + c / new)
            elif ar.condition and valid:
                cancel *= max(1, max(k, k_prev) / gap) * (1 + c / new)
        dnew = a / k_prev * (dkap * gap - kap * dD)
        # D_l = D_{l-1} + c_l k_{l-1} / (a_l kappa_{l-1}): no cancellation
        t = c * k_prev / (a * kap)
        D = D + t
        dD = dD - t * dkap / kap
        kap, dkap = new, dnew
        kappas.append(kap)
        dkappas.append(dkap)
        dfs.append(D)
    return WalkState(kappas, dkappas, D, dD, cancel, valid, below, dfs)


def walk(chain: Chain, kappa0, ar: Arithmetic = FLOAT) -> WalkState | None:
    """:func:`walk_state` on scalars, ``None`` outside the physical branch (some ``kappa_l <= 0``).

    On lanes and complex numbers the state is returned as it is (masks in ``valid``).
    """
    st = walk_state(chain, kappa0, ar)
    if not ar.lanes and ar.ordered and not st.valid:
        return None
    return st


def layer_residuals(chain: Chain, st: WalkState, ar: Arithmetic = FLOAT) -> list:
    """Relative residual of each layer equation at a walked state.

    Layer ``l``: ``|a_l kappa_{l-1} (k_l - D_{l-1}) / k_{l-1} - (kappa_l + c_l)|``
    over the larger of both sides (0 where both vanish).
    """
    out = []
    for (k_prev, k, a, c), kap_prev, kap, D in zip(chain.layers, st.kappas[:-1], st.kappas[1:], st.dfs):
        lhs = a * kap_prev * (k - D) / k_prev
        rhs = kap + c
        scale = ar.maximum(abs(lhs), rhs)
        out.append(ar.where(scale > 0, ar.divide(abs(lhs - rhs), scale), 0 * scale))
    return out


# --------------------------------------------------------------------------
# The scalar equation in kappa_0
# --------------------------------------------------------------------------


def ridge_equation(st: WalkState, n, lam):
    """``(f, df/dkappa_0)`` of ``f = kappa_L (1 - D_L / n) - lambda`` (increasing on the branch)."""
    q = 1 - st.df1 / n
    return st.kappa * q - lam, st.dkappa * q - st.kappa * st.ddf1 / n


def ridgeless_equation(st: WalkState, n):
    """``(f, df/dkappa_0)`` of ``f = n - D_L`` (the ridgeless over-parameterized equation, increasing)."""
    return n - st.df1, -st.ddf1


# --------------------------------------------------------------------------
# Root finder: safeguarded Newton-bisection
# --------------------------------------------------------------------------


def _midpoint(lo, hi, ar):
    """Geometric mean when the bracket spans more than a factor 4 (and ``lo > 0``), else the mean."""
    if ar.lanes:
        geo = (hi > 4 * lo) & (lo > 0)
        return np.where(geo, np.sqrt(np.abs(lo * hi)), 0.5 * (lo + hi))
    return ar.sqrt(lo * hi) if hi > 4 * lo and lo > 0 else (lo + hi) / 2


def _rtsafe_step(x, f, df, ok, lo, hi, ar):
    """One step of :func:`rtsafe`: the bracket shrunk to the side of the root, then the next point.

    ``ok`` False means ``fun`` is undefined at ``x`` (the point lies below
    the root).  The next point is the Newton step when it falls inside the
    bracket, else the midpoint.  Returns ``(exact, lo, hi, next)``.
    """
    above = ok & (f > 0)
    exact = ok & (f == 0)
    lo = ar.where(above, lo, x)
    hi = ar.where(above, x, hi)
    newton = x - ar.divide(f, df)
    use = ok & (df > 0) & (newton > lo) & (newton < hi)
    return exact, lo, hi, ar.where(use, newton, _midpoint(lo, hi, ar))


def rtsafe(fun, lo, hi, guess, ar: Arithmetic, what: str, stats=None, tol=None, max_iter=2000):
    """Root of the increasing ``fun`` on ``(lo, hi)`` (scalars): Newton steps kept inside a shrinking bracket.

    ``fun(x)`` returns ``(f, df)``, or ``None`` where the walk leaves the
    branch (treated as lying below the root).  Stops when the step or the
    bracket is below ``tol`` relative (default ``8 eps``); raises
    :class:`SolverError` after ``max_iter`` steps.
    """
    tol = 8 * ar.eps if tol is None else tol
    x = guess if guess is not None and lo < guess < hi else _midpoint(lo, hi, ar)
    for iteration in range(1, max_iter + 1):
        if stats is not None:
            stats["iterations"] = iteration
        val = fun(x)
        f, df, ok = (0, 0, False) if val is None else (val[0], val[1], True)
        exact, lo, hi, step = _rtsafe_step(x, f, df, ok, lo, hi, ar)
        if exact:
            return x
        if abs(step - x) <= tol * abs(x) or hi - lo <= tol * hi:
            return step
        x = step
    raise SolverError(f"the {what} iteration did not converge (bracket [{lo}, {hi}])")


def rtsafe_lanes(fun, lo, hi, x0, tol, max_iter):
    """Per-lane :func:`rtsafe` on float arrays (the same step, :func:`_rtsafe_step`).

    ``fun(x, idx)`` returns ``(f, df, ok)`` for the lanes ``idx``; ``ok``
    False means the walk left the branch.  Lanes leave the iteration as they
    converge.  Returns ``(root, lo, hi, converged, iterations)``; ``root`` is
    NaN where a lane did not converge within ``max_iter`` steps.
    """
    m = lo.shape[0]
    lo, hi = lo.copy(), hi.copy()
    root = np.full(m, np.nan)
    iters = np.zeros(m, dtype=np.int64)
    done = np.zeros(m, dtype=bool)
    x = np.where((x0 > lo) & (x0 < hi), x0, _midpoint(lo, hi, LANES))
    idx = np.arange(m)
    loa, hia = lo, hi
    for it in range(max_iter):
        if idx.size == 0:
            break
        f, df, ok = fun(x, idx)
        exact, loa, hia, step = _rtsafe_step(x, f, df, ok, loa, hia, LANES)
        fin = exact | (np.abs(step - x) <= tol * np.abs(x)) | (hia - loa <= tol * hia)
        iters[idx] = it + 1
        if fin.any():
            sel = idx[fin]
            root[sel] = np.where(exact[fin], x[fin], step[fin])
            lo[sel], hi[sel] = loa[fin], hia[fin]
            done[sel] = True
            keep = ~fin
            idx, loa, hia, step = idx[keep], loa[keep], hia[keep], step[keep]
        x = step
    if idx.size:
        lo[idx], hi[idx] = loa, hia
    return root, lo, hi, done, iters


# --------------------------------------------------------------------------
# Brackets and the branch edge
# --------------------------------------------------------------------------


def bracket_above(fun, start, ar: Arithmetic = FLOAT):
    """Smallest ``start * 4^j`` with ``fun > 0`` (``fun`` as for :func:`rtsafe`)."""
    hi = start
    for _ in range(2000):
        val = fun(hi)
        if val is not None and val[0] > 0:
            return hi
        hi *= 4
    raise SolverError("could not bracket the effective ridge (no root below kappa_0 = 4^2000)")


def bracket_above_lanes(fun, start):
    """Per lane the smallest ``start * 4^j < 1e300`` with ``fun > 0``; returns ``(hi, found)``."""
    hi = start.copy()
    have = np.zeros(hi.shape[0], dtype=bool)
    todo = np.arange(hi.shape[0])
    for _ in range(600):
        if todo.size == 0:
            break
        f, _, ok = fun(hi[todo], todo)
        good = ok & (f > 0)
        have[todo[good]] = True
        todo = todo[~good]
        hi[todo] *= 4
        todo = todo[hi[todo] < 1e300]  # no root below kappa_0 = 1e300: the lane fails
    return hi, have


def _edge_fun(chain, ar):
    """``kappa_L(kappa_0)`` and its derivative where the layers below ``L`` are valid (increasing)."""

    def fun(x, idx=None):
        st = walk_state(chain if idx is None else select_lanes(chain, idx), x, ar)
        if not ar.lanes:
            return (st.kappa, st.dkappa) if st.valid_below else None
        return st.kappa, st.dkappa, st.valid_below

    return fun


def branch_edge(chain: Chain, ar: Arithmetic = FLOAT):
    """Lower end of the physical branch, ``inf {kappa_0 : every kappa_l > 0}`` (scalars).

    Returns ``(edge, state)`` with ``state`` the walk at the smallest valid
    point found (``ar.tiny()`` itself when the branch reaches ``kappa_0 = 0``).
    The edge is the root of ``kappa_L(kappa_0)`` (bracketed within a factor
    8, then :func:`rtsafe` to ``4 eps``), nudged up by a few ulps when the
    root itself falls just outside the branch.
    """
    tiny = ar.tiny()
    state = walk(chain, tiny, ar)
    if state is not None:
        return tiny, state
    # bracket within a factor 8: up from 1 while invalid, down while valid
    lo, hi = tiny, ar.tiny() * 0 + 1
    while walk(chain, hi, ar) is None:
        lo, hi = hi, hi * 4
        if hi > 1e300:
            raise SolverError("no physical solution: the layer equations have no branch with all kappa_l > 0")
    while hi > 1e-140 * 8:
        x = hi / 8
        if walk(chain, x, ar) is None:
            lo = x
            break
        hi = x
    root = rtsafe(_edge_fun(chain, ar), lo, hi, hi, ar, "branch-edge", tol=4 * ar.eps)
    for k in (0, 2, 8, 32, 128):
        x = root * (1 + k * ar.eps)
        state = walk(chain, x, ar)
        if state is not None:
            return x, state
    return hi, walk(chain, hi, ar)


def branch_edge_lanes(chain: Chain, max_iter: int):
    """Per-lane :func:`branch_edge` on float lanes; returns ``(edge, converged)``."""
    m = chain.base_dim.shape[0]
    tiny = np.full(m, TINY)
    edge = tiny.copy()
    ok = np.ones(m, dtype=bool)
    need = ~walk_state(chain, tiny, LANES).valid
    if not need.any():
        return edge, ok
    idx = np.flatnonzero(need)
    sub = select_lanes(chain, idx)
    # bracket the edge within a factor 8: up from 1 while invalid, down while valid
    hi = np.ones(idx.size)
    lo = np.full(idx.size, TINY)
    v = walk_state(sub, hi, LANES).valid
    todo = np.flatnonzero(~v)
    for _ in range(600):
        if todo.size == 0:
            break
        lo[todo] = hi[todo]
        hi[todo] *= 4
        now = walk_state(select_lanes(sub, todo), hi[todo], LANES).valid
        todo = todo[~now]
    found = ~np.isin(np.arange(idx.size), todo)
    todo = np.flatnonzero(v)
    for _ in range(200):
        if todo.size == 0:
            break
        x = hi[todo] / 8
        now = walk_state(select_lanes(sub, todo), x, LANES).valid
        hi[todo[now]] = x[now]
        lo[todo[~now]] = x[~now]
        todo = todo[now & (x > 1e-140)]
    root, lo, hi2, conv, _ = rtsafe_lanes(_edge_fun(sub, LANES), lo, hi, hi, 4 * EPS, max_iter)
    # the smallest valid point: the root, nudged up by a few ulps if it fell just below
    base = np.where(conv, root, hi2)
    cand = base.copy()
    good = walk_state(sub, base, LANES).valid
    for k in (2, 8, 32, 128):
        bad = np.flatnonzero(~good)
        if bad.size == 0:
            break
        x = base[bad] * (1 + k * EPS)
        v = walk_state(select_lanes(sub, bad), x, LANES).valid
        cand[bad[v]] = x[v]
        good[bad[v]] = True
    cand = np.where(good, cand, hi2)
    edge[idx] = cand
    ok[idx] = found & (conv | (hi2 - lo <= 1e-12 * hi2))
    return edge, ok
