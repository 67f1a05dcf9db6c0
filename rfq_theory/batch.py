"""Vectorized float solver: the fixed-point equations for arrays of points at once.

The equations are those of :mod:`rfq_theory.solver` (``docs/theory.md``).
With ``a_l = kappa1_l^2``, ``c_l = kappastar_l^2`` and sizes ``k_0..k_L``:

    base:   df1_0(k) = k_0 c_0 / (c_0 + k),   s(kappa) = 1 / (1 + kappa_0)
    layer:  kappa_l = a_l kappa_{l-1} (k_l - df1_{l-1}) / k_{l-1} - c_l
            df1_l   = k_l - k_{l-1} kappa_l / (a_l kappa_{l-1}) = df1_{l-1} + c_l k_{l-1} / (a_l kappa_{l-1})
    ridge:  lambda  = kappa_L (1 - df1_L / n)

    E_test  = [Var y - rho (s - kappa_L s')] / (1 - df2 / n),   df2 = df1 + kappa_L df1'
    E_train = (lambda / kappa_L)^2 E_test

Every point ("lane") carries its own sample size ``n``, ridge ``lambda``,
noise ``Delta`` and sizes ``k_0..k_L``; the layer coefficients depend only on
the activations, quantizers and target, so they are computed once per
distinct model (:func:`chain_model`) and shared by all lanes.

This module is the lane driver of :mod:`rfq_theory.chain`: per lane the
chain is walked upward from ``kappa_0`` in closed form with its derivative
(:func:`rfq_theory.chain.walk_state` on NumPy arrays).  Then:

1. the lower end of the physical branch (the *edge*, where ``kappa_L``
   reaches 0) is found by :func:`rfq_theory.chain.branch_edge_lanes`;
2. the root of the scalar equation (``lambda(kappa_0) = lambda``, or
   ``df1_L(kappa_0) = n`` for the ridgeless over-parameterized lanes) is
   found by the per-lane safeguarded Newton-bisection
   :func:`rfq_theory.chain.rtsafe_lanes` inside the bracket
   ``(edge, hi)``; a point where the walk leaves the branch counts as lying
   below the root;
3. the ridgeless under-parameterized lanes (``n > rank Omega_L``) sit at the
   edge (``kappa_L = 0``); the lanes with ``lambda = 0`` and ``n = rank``
   are the interpolation threshold: infinite test error.

A lane that does not converge is ``NaN`` and counted (:class:`BatchResult`).
A lane whose walk amplifies rounding errors beyond
:data:`rfq_theory.solver.FLOAT_AMPLIFICATION_LIMIT`, or where
``|1 - df2/n| < 1e-6`` (the cancellation rule of the scalar float path), is
flagged in ``BatchResult.fallback`` and re-solved: by default
(``fallback="dd"``) together in double-double arithmetic
(:mod:`rfq_theory._ddwalk`), only the lanes that stay ill-conditioned at that
precision going to the scalar mpmath path, ``predict(..., digits=FALLBACK_DIGITS)``;
with ``fallback="mpmath"`` every flagged lane goes to mpmath.

Losses
------
The lanes' solved chain (:class:`LaneState`) is turned into errors by a loss
function (:data:`LossFunction`, :data:`LOSSES`); the square loss of the ridge
readout is the one built in.  Readouts with their own order parameters (convex
classification losses: ``kappa_0``, ``m``, ``q``) have their own lane solver,
:mod:`rfq_theory.glm_lanes`, on the same vectorized walk; both are reached
through :mod:`rfq_theory.readouts`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from .caches import register_cache
from .chain import (
    EPS,
    LANES,
    TINY,
    Chain,
    WalkState,
    bracket_above_lanes,
    branch_edge_lanes,
    build_chain,
    layer_residuals,
    omega_rank,
    ridge_equation,
    ridgeless_equation,
    rtsafe_lanes,
    select_lanes,
    walk_state,
)
from .checks import InputError
from .model import DeepRF
from .observables import chain_readout, error_terms, train_error
from .results import result_repr

__all__ = [
    "ChainModel",
    "chain_model",
    "ChainFunctionals",
    "chain_functionals",
    "LaneState",
    "BatchResult",
    "OptimalRidgeResult",
    "solve_batch",
    "optimal_ridge_batch",
    "LOSSES",
    "FALLBACK_DIGITS",
    "FALLBACKS",
    "NonConvergenceWarning",
]

#: digits of the scalar mpmath path that re-solves ill-conditioned lanes
FALLBACK_DIGITS = 25
#: lanes handled in one pass (memory stays linear in the number of lanes)
CHUNK = 1 << 16
#: what happens to ill-conditioned lanes (see :func:`solve_batch`)
FALLBACKS = ("mpmath", "dd", "none")
#: a double-double lane is accepted when the float walk's amplification is at most this
#: (rounding ~1e-32 times it stays below 1e-12) and ``|1 - df2/n|`` at least DD_MIN_DENOM
DD_AMPLIFICATION_LIMIT = 1e20
DD_MIN_DENOM = 1e-18
#: default ridge bounds of the optimal-ridge search (as :func:`rfq_theory.sweeps.optimal_ridge`)
RIDGE_BOUNDS = (1e-10, 1e4)

REGIMES = ("ridge", "ridgeless-underparameterized", "ridgeless-overparameterized", "interpolation-threshold")
RIDGE, UNDER, OVER, THRESHOLD = range(4)


class NonConvergenceWarning(RuntimeWarning):
    """Some lanes did not converge; they are NaN in the result arrays."""


# --------------------------------------------------------------------------
# per-model coefficients
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainModel:
    """The numbers of one distinct model that do not depend on the sizes.

    ``a`` and ``c`` hold ``kappa1_l^2`` and ``kappastar_l^2`` of the layers
    after the last restart (a layer with ``kappa1 = 0`` restarts the chain at
    ``first`` with ``Omega = c I``, scale ``base_scale``, and erases the
    signal); ``rho`` is ``mu1(f*)^2`` (0 when the signal is erased) and
    ``var_f`` is ``Var f*(g)``.
    """

    depth: int
    first: int
    base_scale: float
    signal: bool
    a: tuple
    c: tuple
    rho: float
    var_f: float
    activations: tuple
    quantizers: tuple
    target: str
    measure: Any = None


def chain_model(model: DeepRF, target="linear") -> ChainModel:
    """Layer coefficients of ``model`` and the target moments, as floats (cached per model).

    Uses the same coefficients (17 digits) and the same restart rule as the
    scalar float path (:func:`rfq_theory.solver.build_chain`).
    """
    if not isinstance(model, DeepRF):
        raise InputError(f"model must be a DeepRF, got {type(model).__name__}")
    if model.structured:
        return _chain_model_cached(
            model.activations, model.quantizers, str(target), model.input_spectrum, model.teacher, model.input_dim
        )
    return _chain_model_cached(model.activations, model.quantizers, str(target))


@lru_cache(maxsize=256)
def _chain_model_cached(activations, quantizers, target, spectrum=None, teacher=None, input_dim=1):
    from .observables import target_moments
    from .precision import mp as mpmath

    if spectrum is None:
        model = DeepRF(1, (1,) * len(activations), activations, quantizers)
    else:
        model = DeepRF(input_dim, (1,) * len(activations), activations, quantizers, spectrum, teacher)
    layers = model.layers(17)
    measure = model.base_measure()
    chain = build_chain([1.0] * (len(activations) + 1), layers, float, measure=measure)
    with mpmath.workdps(20):
        rho, var_f = target_moments(target, 17)
    a = tuple(float(layer[2]) for layer in chain.layers)
    c = tuple(float(layer[3]) for layer in chain.layers)
    return ChainModel(
        depth=len(activations),
        first=chain.first,
        base_scale=float(chain.base_scale),
        signal=bool(chain.signal),
        a=a,
        c=c,
        rho=float(rho) if chain.signal else 0.0,
        var_f=float(var_f),
        activations=activations,
        quantizers=quantizers,
        target=target,
        measure=chain.measure,
    )


register_cache(_chain_model_cached.cache_clear)


# --------------------------------------------------------------------------
# the vectorized walk
# --------------------------------------------------------------------------


def _lane_chain(ch: ChainModel, sizes) -> Chain:
    """The :class:`~rfq_theory.chain.Chain` of lanes: per-lane sizes ``k_first..k_L``, shared ``a_l``, ``c_l``."""
    cs = sizes[ch.first :]
    layers = tuple((cs[j], cs[j + 1], a, c) for j, (a, c) in enumerate(zip(ch.a, ch.c)))
    base_rank = cs[0] if ch.measure is None else np.full(np.shape(cs[0]), float(ch.measure.rank))
    return Chain(
        cs[0], ch.base_scale, ch.signal, layers, ch.first, omega_rank(base_rank, layers, np.minimum), ch.measure
    )


def _walk(lc: Chain, k0) -> WalkState:
    """The chain walked on float lanes from the array ``k0`` (:func:`rfq_theory.chain.walk_state`)."""
    return walk_state(lc, k0, LANES)


# --------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------


@dataclass
class LaneState:
    """The solved fixed point of a set of lanes (arrays of one length), the input of a loss.

    ``kappa0``, ``kappa`` (``kappa_L``), ``df1``, ``df2``, ``s``, ``s_prime``
    (``ds/dkappa_L``), ``denom = 1 - df2/n``, the lane inputs ``samples``,
    ``ridge``, ``noise`` and the regime codes (indices into :data:`REGIMES`),
    plus the model's ``rho`` and ``var_f`` and the lanes' ``rank Omega_L``.
    """

    kappa0: np.ndarray
    kappa: np.ndarray
    df1: np.ndarray
    df2: np.ndarray
    s: np.ndarray
    s_prime: np.ndarray
    denom: np.ndarray
    samples: np.ndarray
    ridge: np.ndarray
    noise: np.ndarray
    regime: np.ndarray
    rho: float
    var_f: float
    rank: np.ndarray | None = None


#: A loss maps a :class:`LaneState` to ``{"test_error": array, "train_error": array, ...}``
#: (arrays of the lanes' length; ``inf`` where the error diverges), selected with
#: ``solve_batch(..., loss=name)`` from :data:`LOSSES`.
LossFunction = Callable[[LaneState], dict[str, np.ndarray]]


def square_loss(st: LaneState) -> dict[str, np.ndarray]:
    """Square loss of the ridge readout: ``E_test`` and ``E_train`` (:mod:`rfq_theory.observables`)."""
    s_minus = st.s - st.kappa * st.s_prime
    rank = st.samples if st.rank is None else st.rank  # enters only at the branch edge
    with np.errstate(divide="ignore", invalid="ignore"):
        _, _, test = error_terms(st.var_f, st.noise, st.rho, s_minus, st.df2, st.samples, st.denom)
        train = train_error(test, st.samples, st.ridge, st.kappa, rank)
    thr = st.regime == THRESHOLD
    test = np.where(thr, np.inf, test)
    train = np.where(thr, 0.0, train)
    return {"test_error": test, "train_error": train}


#: registered losses, name -> :data:`LossFunction`
LOSSES: dict[str, LossFunction] = {"square": square_loss}


@dataclass
class ChainFunctionals:
    """The chain's functionals at given ``kappa_0`` (arrays of one shape).

    ``kappa`` (``kappa_L``), ``dkappa`` (``d kappa_L / d kappa_0``), ``df1``,
    ``df2 = df1 + kappa df1'``, ``s = 1/(1 + kappa_0)`` (0 when a layer
    erased the signal), ``s_prime = ds/dkappa_L``, ``s_plus = s + kappa s'``,
    ``valid`` (every ``kappa_l > 0``), ``cancel`` (the rounding
    amplification of the walk, compared with
    :data:`rfq_theory.solver.FLOAT_AMPLIFICATION_LIMIT`) and ``rank``.
    """

    kappa: np.ndarray
    dkappa: np.ndarray
    df1: np.ndarray
    df2: np.ndarray
    s: np.ndarray
    s_prime: np.ndarray
    s_plus: np.ndarray
    valid: np.ndarray
    cancel: np.ndarray
    rank: np.ndarray


def chain_functionals(model: DeepRF, kappa0, *, input_dim=None, widths: Sequence | None = None) -> ChainFunctionals:
    """Walk the layer equations from arrays of ``kappa_0`` (the seam for other readouts).

    Implements, lane by lane, the walk of :mod:`rfq_theory.chain`
    (``kappa_l = a_l kappa_{l-1} (k_l - df1_{l-1}) / k_{l-1} - c_l`` and
    ``df1_l = df1_{l-1} + c_l k_{l-1} / (a_l kappa_{l-1})``) with its derivatives.  A readout whose equations couple the
    chain only through ``kappa_0`` and these functionals (for example a
    convex classification loss, with order parameters ``m``, ``q`` beside
    ``kappa_0``) can iterate on arrays of lanes and call this function for
    the feature side; the square loss is :func:`solve_batch`.
    ``kappa0``, ``input_dim`` and the entries of ``widths`` broadcast.
    """
    ch = chain_model(model)
    shape, k0, _, _, sizes = _lanes(model, kappa0, 0.0, 0.0, input_dim, widths)
    lc = _lane_chain(ch, sizes)
    with np.errstate(all="ignore"):
        wk = _walk(lc, k0)
        df2, s, sp = chain_readout(k0, wk.kappa, wk.dkappa, wk.df1, wk.ddf1, ch.signal, ch.measure)
        splus = s + wk.kappa * sp
    arrays = [wk.kappa, wk.dkappa, wk.df1, df2, s, sp, splus, wk.valid, wk.cancellation, lc.rank]
    return ChainFunctionals(*(a.reshape(shape) for a in arrays))


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------


class _LaneCounts:
    """Shape and counts shared by the lane results (``test_error``, ``converged``, ``fallback``)."""

    test_error: np.ndarray
    converged: np.ndarray
    fallback: np.ndarray

    @property
    def shape(self):
        """Shape of the lane arrays."""
        return self.test_error.shape

    @property
    def n_failed(self) -> int:
        """Number of lanes that did not converge (NaN)."""
        return int(np.count_nonzero(~self.converged))

    @property
    def n_fallback(self) -> int:
        """Number of ill-conditioned lanes re-solved at higher precision (double-double or mpmath)."""
        return int(np.count_nonzero(self.fallback))

    @property
    def diagnostics(self):
        """The lanes' :class:`~rfq_theory.results.Diagnostics` (``failed`` when any lane did not converge)."""
        from .results import Diagnostics

        res = getattr(self, "residual", None)
        finite = res[np.isfinite(res)] if res is not None else np.zeros(0)
        return Diagnostics(
            status="failed" if self.n_failed else "fallback" if self.n_fallback else "ok",
            converged=self.n_failed == 0,
            message="; ".join(self.messages),
            iterations=int(np.sum(self.iterations)),
            residual=float(finite.max()) if finite.size else 0.0,
            fallback="mpmath" if self.n_fallback else "float",
        )


def _report_failures(conv, n_lanes, messages, warn):
    """Count the lanes that did not converge in ``messages`` (and a warning at the caller's caller)."""
    n_failed = int(np.count_nonzero(~conv))
    if n_failed:
        msg = f"{n_failed} of {n_lanes} lane(s) did not converge; they are NaN"
        messages.append(msg)
        if warn:
            warnings.warn(msg, NonConvergenceWarning, stacklevel=3)


@dataclass
class BatchResult(_LaneCounts):
    """Errors of many lanes (arrays of the broadcast shape of the inputs).

    Attributes
    ----------
    test_error, train_error:
        ``inf`` at the interpolation threshold, ``NaN`` where a lane did not
        converge.
    effective_ridge, kappa0, df1, df2:
        ``kappa_L``, ``kappa_0``, ``df1(kappa_L)`` and ``df2(kappa_L)``.
    rank:
        ``rank Omega_L`` per lane (the ridgeless interpolation threshold is ``n = rank``).
    regime:
        integer codes into :data:`REGIMES`.
    converged:
        False where the lane failed (NaN); ``n_failed`` counts them.
    iterations:
        Newton-bisection steps of the root find (edge search excluded).
    fallback:
        True where the lane was ill-conditioned on the float path and re-solved
        (``fallback="mpmath"``: with the scalar mpmath path at
        ``digits = FALLBACK_DIGITS``; ``"dd"``: in double-double arithmetic,
        marked in ``double_double``, else with mpmath); ``n_fallback`` counts them.
    double_double:
        True where the lane was re-solved in double-double arithmetic.
    residual:
        Largest relative residual of the layer and ridge equations, recomputed
        at the solution (float lanes; 0 for fallback and threshold lanes).
    """

    test_error: np.ndarray
    train_error: np.ndarray
    effective_ridge: np.ndarray
    kappa0: np.ndarray
    df1: np.ndarray
    df2: np.ndarray
    rank: np.ndarray
    regime: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    fallback: np.ndarray
    residual: np.ndarray
    double_double: np.ndarray | None = None
    extra: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)

    _headline = (
        "test_error",
        "train_error",
        "effective_ridge",
        "kappa0",
        "df1",
        "df2",
        "rank",
        "n_failed",
        "n_fallback",
    )
    __repr__ = result_repr


@dataclass
class OptimalRidgeResult(_LaneCounts):
    """Error-minimising ridge per lane.

    ``ridge`` is ``lambda*`` (``0`` where the ridgeless estimator is best),
    ``test_error`` the error there; ``converged``, ``fallback``,
    ``iterations`` (golden-section steps) and the counts as in
    :class:`BatchResult`.
    """

    ridge: np.ndarray
    test_error: np.ndarray
    converged: np.ndarray
    fallback: np.ndarray
    iterations: np.ndarray
    rank: np.ndarray
    messages: list = field(default_factory=list)

    _headline = ("ridge", "test_error", "rank", "n_failed", "n_fallback")
    __repr__ = result_repr


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------


def _as_array(value, name, positive):
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number or an array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite, got non-finite values")
    if positive and not np.all(arr > 0):
        raise InputError(f"{name} must be > 0, got min {arr.min()!r}")
    if not positive and not np.all(arr >= 0):
        raise InputError(f"{name} must be >= 0, got min {arr.min()!r}")
    return arr


def _lanes(model, samples, ridge, noise, input_dim, widths):
    """Broadcast the lane inputs; returns (shape, n, lam, delta, sizes[L+1])."""
    if widths is None:
        widths = [float(w) for w in model.sizes(20)[1:]]
    if input_dim is None:
        input_dim = float(model.sizes(20)[0])
    widths = list(widths) if not isinstance(widths, np.ndarray) or widths.ndim else [widths]
    if len(widths) != model.depth:
        raise InputError(f"widths must hold {model.depth} entries (one per layer), got {len(widths)}")
    arrays = [
        _as_array(samples, "samples", True),
        _as_array(ridge, "ridge", False),
        _as_array(noise, "noise", False),
        _as_array(input_dim, "input_dim", True),
    ]
    arrays += [_as_array(w, f"widths[{i}]", True) for i, w in enumerate(widths)]
    if model.structured and not np.all(arrays[3] == float(model.input_dim)):
        raise InputError(
            f"input_dim is fixed at {model.input_dim} by the input spectrum ({model.input_spectrum.spec}): "
            "vary another axis, or give the spectrum as a family for each input dimension"
        )
    try:
        arrays = np.broadcast_arrays(*arrays)
    except ValueError as exc:
        raise InputError(f"lane inputs do not broadcast to one shape: {exc}") from None
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a).reshape(-1) for a in arrays]
    return shape, flat[0], flat[1], flat[2], flat[3:]


# --------------------------------------------------------------------------
# the solver
# --------------------------------------------------------------------------


def _solve_kappa0(lc: Chain, n, lam, edge, over, max_iter):
    """``kappa_0`` of the lanes: ridge root for ``lam > 0``, ``df1_L = n`` where ``over``."""
    m = n.shape[0]

    def fun(x, j):
        wk = _walk(select_lanes(lc, j), x)
        nj, lj, oj = n[j], lam[j], over[j]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            f_r, df_r = ridge_equation(wk, nj, lj)
            f_o, df_o = ridgeless_equation(wk, nj)
        return np.where(oj, f_o, f_r), np.where(oj, df_o, df_r), wk.valid

    hi, have = bracket_above_lanes(fun, np.maximum(2 * edge, 1.0))
    # first guess: one Newton step from the edge (exact for small ridges)
    all_idx = np.arange(m)
    f0, df0, ok0 = fun(edge, all_idx)
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = np.where(ok0 & (df0 > 0), edge - f0 / df0, np.nan)
    root, lo, hi, conv, iters = rtsafe_lanes(fun, edge.copy(), hi, x0, 8 * EPS, max_iter)
    # a root within rounding of the edge (f(edge) >= 0): the edge itself
    at = ok0 & (f0 >= 0)
    root = np.where(at, edge, root)
    conv = (conv | at) & have
    return root, conv, iters


def _solve_chunk(ch, n, lam, delta, sizes, loss, max_iter):
    m = n.shape[0]
    lc = _lane_chain(ch, sizes)
    rank = lc.rank
    regime = np.where(lam > 0, RIDGE, np.where(n > rank, UNDER, np.where(n < rank, OVER, THRESHOLD)))
    with np.errstate(all="ignore"):
        edge, edge_ok = branch_edge_lanes(lc, max_iter)
        kappa0 = edge.copy()
        conv = edge_ok.copy()
        iters = np.zeros(m, dtype=np.int64)
        solve = np.flatnonzero((regime == RIDGE) | (regime == OVER))
        if solve.size:
            sub = select_lanes(lc, solve)
            r, c, it = _solve_kappa0(sub, n[solve], lam[solve], edge[solve], regime[solve] == OVER, max_iter)
            kappa0[solve] = r
            conv[solve] &= c
            iters[solve] = it
        state, wk = _state(ch, lc, kappa0, n, lam, delta, regime)
        at_edge, denom = regime == UNDER, state.denom
        out = loss(state)
        thr = regime == THRESHOLD
        conv = np.where(thr, True, conv & (wk.valid | at_edge) & (denom > 0))
        fallback = (~at_edge) & (~thr) & conv & ((wk.cancellation > _limit()) | (np.abs(denom) < 1e-6))
        fallback |= (~at_edge) & (~thr) & (~(denom > 0)) & (np.abs(denom) < 1e-6)
        residual = _residual(lc, wk, n, lam, regime)
    return dict(
        out=out,
        kappa=state.kappa,
        kappa0=kappa0,
        df1=state.df1,
        df2=state.df2,
        rank=rank,
        regime=regime,
        converged=conv,
        iterations=iters,
        fallback=fallback,
        residual=residual,
        cancel=wk.cancellation,
    )


def _state(ch, lc, kappa0, n, lam, delta, regime):
    """The :class:`LaneState` at ``kappa0`` (lanes at the edge: ``kappa_L = 0``, ``df1 = df2 = rank``)."""
    wk = _walk(lc, kappa0)
    rank = lc.rank
    at_edge = regime == UNDER
    df2, s, s_prime = chain_readout(kappa0, wk.kappa, wk.dkappa, wk.df1, wk.ddf1, ch.signal, ch.measure)
    kL = np.where(at_edge, 0.0, wk.kappa)
    df1 = np.where(at_edge, rank, wk.df1)
    df2 = np.where(at_edge, rank, df2)
    # (n - rank) is exact when n and rank are within a factor 2 (Sterbenz): no cancellation
    denom = np.where(at_edge, (n - rank) / n, 1 - df2 / n)
    return LaneState(kappa0, kL, df1, df2, s, s_prime, denom, n, lam, delta, regime, ch.rho, ch.var_f, rank), wk


def _residual(lc, wk, n, lam, regime):
    """Largest relative residual of the layer equations and the ridge equation (walk ``wk`` at the solution)."""
    worst = np.zeros_like(wk.kappa)
    for r in layer_residuals(lc, wk, LANES):
        worst = np.maximum(worst, r)
    kap, D = wk.kappa, wk.df1
    ridge_res = np.abs(kap * (1 - D / n) - lam) / np.maximum(lam, kap)
    ridge_res = np.where(regime == RIDGE, ridge_res, np.where(regime == OVER, np.abs(n - D) / n, 0.0))
    worst = np.maximum(worst, ridge_res)
    return np.where(regime == THRESHOLD, 0.0, worst)


def _limit():
    from .solver import FLOAT_AMPLIFICATION_LIMIT

    return FLOAT_AMPLIFICATION_LIMIT


def _exact(x):
    """The binary value of a float lane input, exactly (a decimal repr would move near-threshold lanes)."""
    from .precision import mp as mpmath

    return mpmath.mpf(float(x))


def _lane_model(model, d, widths):
    from dataclasses import replace

    return replace(model, input_dim=_exact(d), widths=tuple(_exact(w) for w in widths))


def _refine_dd(model, target, ch, n, lam, delta, sizes, lanes, res, outs, loss):
    """Re-solve ``lanes`` in double-double; fill the accepted ones in place; returns the accepted mask."""
    from . import _ddwalk

    done = np.zeros(lanes.size, dtype=bool)
    if ch.measure is not None:  # the double-double walk has no structured base: mpmath takes these lanes
        return done
    for start in range(0, lanes.size, CHUNK):
        part = np.arange(start, min(start + CHUNK, lanes.size))
        idx = lanes[part]
        over = lam[idx] == 0
        cs = [s[idx] for s in sizes[ch.first :]]
        r = _ddwalk.refine(
            model, target, ch.first, ch.signal, cs, n[idx], lam[idx], delta[idx], over, res["kappa0"][idx]
        )
        ok = r["converged"] & r["valid"] & (r["denom"] > DD_MIN_DENOM) & (res["cancel"][idx] <= DD_AMPLIFICATION_LIMIT)
        sel = idx[ok]
        if loss == "square":
            outs["test_error"][sel] = r["test_error"][ok]
            outs["train_error"][sel] = r["train_error"][ok]
        else:
            k = ok.nonzero()[0]
            st = LaneState(
                r["kappa0"][k],
                r["kappa"][k],
                r["df1"][k],
                r["df2"][k],
                r["s"][k],
                r["s_prime"][k],
                r["denom"][k],
                n[sel],
                lam[sel],
                delta[sel],
                np.where(over[k], OVER, RIDGE),
                ch.rho,
                ch.var_f,
            )
            for key, v in LOSSES[loss](st).items():
                outs[key][sel] = v
        for key in ("kappa", "kappa0", "df1", "df2"):
            res[key][sel] = r[key][ok]
        res["residual"][sel] = 0.0
        done[part] = ok
    return done


def _fallback_lanes(model, target, n, lam, delta, sizes, lanes, progress):
    """Re-solve ``lanes`` with the scalar mpmath path; returns ``{lane: Prediction-or-None}``."""
    from .solver import SolverError, predict

    out = {}
    it = lanes
    if progress and len(lanes) > 20:
        from tqdm.auto import tqdm

        it = tqdm(lanes, desc="mpmath fallback", leave=False)
    for i in it:
        m = _lane_model(model, sizes[0][i], [s[i] for s in sizes[1:]])
        try:
            out[i] = predict(m, _exact(n[i]), _exact(lam[i]), _exact(delta[i]), target, digits=FALLBACK_DIGITS)
        except (SolverError, ArithmeticError, ValueError):
            out[i] = None
    return out


def solve_batch(
    model: DeepRF,
    samples,
    ridge=0.0,
    noise=0.0,
    target="linear",
    *,
    input_dim=None,
    widths: Sequence | None = None,
    loss: str = "square",
    fallback: str = "dd",
    max_iter: int = 200,
    progress: bool | None = None,
    warn: bool = True,
) -> BatchResult:
    """Asymptotic errors of ``model`` at many points at once (float, vectorized).

    Parameters
    ----------
    model:
        A :class:`~rfq_theory.model.DeepRF`; its activations, quantizers and
        (unless overridden) sizes.
    samples, ridge, noise:
        ``n > 0``, ``lambda >= 0``, ``Delta >= 0``: numbers or arrays.
    input_dim, widths:
        Optional per-lane ``d`` and a sequence of one entry per layer
        ``k_1..k_L`` (numbers or arrays); default: the model's.
    target:
        ``f*`` (as for :func:`rfq_theory.solver.predict`).
    loss:
        A registered loss (:data:`LOSSES`, default ``"square"``).
    fallback:
        ``"mpmath"`` re-solves ill-conditioned lanes with
        ``predict(..., digits=FALLBACK_DIGITS)``; ``"dd"`` (the default) re-solves them
        first, vectorized, in double-double arithmetic (about 32 digits, with
        34-digit coefficients) and passes to mpmath only the lanes whose
        amplification exceeds :data:`DD_AMPLIFICATION_LIMIT` or whose
        ``|1 - df2/n|`` is below :data:`DD_MIN_DENOM`; ``"none"`` leaves them
        as NaN (flagged in ``fallback`` and counted as not converged).
    progress:
        Progress bar over chunks of lanes (default: on above 10^6 lanes... and
        for more than 20 fallback lanes when standard error is a terminal).
    warn:
        Emit a :class:`NonConvergenceWarning` counting the NaN lanes.

    Notes
    -----
    All inputs broadcast to one shape, the shape of every result array.
    Solves the fixed-point equations of the module docstring lane by lane on
    the physical branch and returns a :class:`BatchResult`.
    """
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(sorted(LOSSES))}, got {loss!r}")
    if fallback not in FALLBACKS:
        raise InputError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    ch = chain_model(model, target)
    shape, n, lam, delta, sizes = _lanes(model, samples, ridge, noise, input_dim, widths)
    N = n.shape[0]
    keys = ("kappa", "kappa0", "df1", "df2", "rank", "residual", "cancel")
    res = {k: np.empty(N) for k in keys}
    res["regime"] = np.empty(N, dtype=np.int8)
    res["converged"] = np.empty(N, dtype=bool)
    res["fallback"] = np.empty(N, dtype=bool)
    res["iterations"] = np.empty(N, dtype=np.int32)
    outs: dict[str, np.ndarray] = {}
    chunks = range(0, N, CHUNK)
    show = progress if progress is not None else (N > 4 * CHUNK and _isatty())
    if show and len(chunks) > 1:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="lanes", unit="chunk", leave=False)
    for start in chunks:
        sl = slice(start, min(start + CHUNK, N))
        part = _solve_chunk(ch, n[sl], lam[sl], delta[sl], [s[sl] for s in sizes], LOSSES[loss], max_iter)
        for k in keys + ("regime", "converged", "fallback", "iterations"):
            res[k][sl] = part[k]
        for k, v in part["out"].items():
            if k not in outs:
                outs[k] = np.empty(N)
            outs[k][sl] = v
    conv, fb = res["converged"], res["fallback"]
    refined = np.zeros(N, dtype=bool)
    messages = []
    lanes = np.flatnonzero(fb)
    if lanes.size and fallback == "dd":
        done = _refine_dd(model, target, ch, n, lam, delta, sizes, lanes, res, outs, loss)
        refined[lanes[done]] = True
        conv[lanes[done]] = True
        messages.append(f"{int(done.sum())} ill-conditioned lane(s) re-solved in double-double arithmetic")
        lanes = lanes[~done]
    if lanes.size and fallback in ("mpmath", "dd"):
        solved = _fallback_lanes(
            model, target, n, lam, delta, sizes, lanes.tolist(), progress if progress is not None else _isatty()
        )
        for i, p in solved.items():
            if p is None:
                conv[i] = False
                continue
            conv[i] = True
            if loss == "square":
                outs["test_error"][i] = float(p.test_error)
                outs["train_error"][i] = float(p.train_error)
            res["kappa"][i] = float(p.effective_ridge)
            res["df1"][i], res["df2"][i] = float(p.df1), float(p.df2)
            res["kappa0"][i] = float(p.kappa0)
            res["residual"][i] = 0.0
        messages.append(f"{lanes.size} ill-conditioned lane(s) re-solved with mpmath at {FALLBACK_DIGITS} digits")
    elif lanes.size:
        conv[lanes] = False
        messages.append(f"{lanes.size} ill-conditioned lane(s) left as NaN (fallback='none')")
    for v in outs.values():
        v[~conv] = np.nan
    for k in ("kappa", "kappa0", "df1", "df2"):
        res[k][~conv] = np.nan
    _report_failures(conv, N, messages, warn)
    extra = {k: v.reshape(shape) for k, v in outs.items() if k not in ("test_error", "train_error")}
    return BatchResult(
        test_error=outs["test_error"].reshape(shape),
        train_error=outs.get("train_error", np.full(N, np.nan)).reshape(shape),
        effective_ridge=res["kappa"].reshape(shape),
        kappa0=res["kappa0"].reshape(shape),
        df1=res["df1"].reshape(shape),
        df2=res["df2"].reshape(shape),
        rank=res["rank"].reshape(shape),
        regime=res["regime"].reshape(shape),
        converged=conv.reshape(shape),
        iterations=res["iterations"].reshape(shape),
        fallback=fb.reshape(shape),
        residual=res["residual"].reshape(shape),
        double_double=refined.reshape(shape),
        extra=extra,
        messages=messages,
    )


def _isatty():
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------
# optimal ridge
# --------------------------------------------------------------------------

_GOLD = (math.sqrt(5) - 1) / 2


def _optimal_chunk(ch, n, delta, sizes, loss, bounds, tol, max_iter):
    """Golden-section search of the test error over ``t = log(kappa_0 - kappa_0^min)`` per lane.

    ``kappa_0^min`` is the ridgeless solution (``lambda = 0``); ``lambda(kappa_0)``
    is increasing, so the ridge bounds map to an interval of ``t`` and every
    trial point costs one walk of the chain (no inner root find).
    """
    m = n.shape[0]
    lc = _lane_chain(ch, sizes)
    rank = lc.rank
    zero = np.zeros(m)
    reg0 = np.where(n > rank, UNDER, np.where(n < rank, OVER, THRESHOLD))
    with np.errstate(all="ignore"):
        edge, conv = branch_edge_lanes(lc, max_iter)
        kmin = edge.copy()
        over = np.flatnonzero(reg0 == OVER)
        if over.size:
            sub = select_lanes(lc, over)
            r, c, _ = _solve_kappa0(sub, n[over], zero[over], edge[over], np.ones(over.size, bool), max_iter)
            kmin[over] = r
            conv[over] &= c
        ones = np.ones(m, bool)
        k_lo, c_lo, _ = _solve_kappa0(lc, n, np.full(m, bounds[0]), edge, ~ones, max_iter)
        k_hi, c_hi, _ = _solve_kappa0(lc, n, np.full(m, bounds[1]), edge, ~ones, max_iter)
        conv &= c_lo & c_hi
        # ridgeless end point
        st0, wk0 = _state(ch, lc, kmin, n, zero, delta, reg0)
        e0 = loss(st0)["test_error"]
        e0 = np.where(reg0 == THRESHOLD, np.inf, e0)

        def err(t, j):
            k0 = kmin[j] + np.exp(t)
            sub = select_lanes(lc, j)
            wk = _walk(sub, k0)
            lam = wk.kappa * (1 - wk.df1 / n[j])
            st, _ = _state(ch, sub, k0, n[j], lam, delta[j], np.full(j.size, RIDGE))
            e = loss(st)["test_error"]
            return np.where(wk.valid & (st.denom > 0) & np.isfinite(e), e, np.inf)

        dmin = np.maximum(kmin * EPS, TINY)
        a = np.log(np.maximum(k_lo - kmin, dmin))
        b = np.log(np.maximum(k_hi - kmin, dmin))
        idx = np.arange(m)
        c = b - _GOLD * (b - a)
        d = a + _GOLD * (b - a)
        fc, fd = err(c, idx), err(d, idx)
        best_t = np.where(fc <= fd, c, d)
        iters = np.zeros(m, dtype=np.int64)
        done = np.zeros(m, bool)
        A, B, C, Dd, FC, FD = a, b, c, d, fc, fd
        for it in range(max_iter):
            fin = (B - A) <= tol * np.maximum(1.0, np.abs(A))
            if fin.any():
                sel = idx[fin]
                best_t[sel] = np.where(FC[fin] <= FD[fin], C[fin], Dd[fin])
                done[sel] = True
                iters[sel] = it
                keep = ~fin
                idx, A, B, C, Dd, FC, FD = idx[keep], A[keep], B[keep], C[keep], Dd[keep], FC[keep], FD[keep]
            if idx.size == 0:
                break
            left = FC <= FD  # the minimum lies in [A, D], else in [C, B]
            A2 = np.where(left, A, C)
            B2 = np.where(left, Dd, B)
            C2 = np.where(left, B2 - _GOLD * (B2 - A2), Dd)
            D2 = np.where(left, C, A2 + _GOLD * (B2 - A2))
            fp = err(np.where(left, C2, D2), idx)
            FC, FD = np.where(left, fp, FD), np.where(left, FC, fp)
            A, B, C, Dd = A2, B2, C2, D2
        conv &= done
        k_best = kmin + np.exp(best_t)
        wk = _walk(lc, k_best)
        lam_best = wk.kappa * (1 - wk.df1 / n)
        st, wk = _state(ch, lc, k_best, n, lam_best, delta, np.full(m, RIDGE))
        e_best = loss(st)["test_error"]
        ridgeless = e0 <= e_best
        lam_star = np.where(ridgeless, 0.0, lam_best)
        e_star = np.where(ridgeless, e0, e_best)
        ill = (~ridgeless) & ((wk.cancellation > _limit()) | (np.abs(st.denom) < 1e-6))
        ill |= ridgeless & (reg0 == OVER) & ((wk0.cancellation > _limit()) | (np.abs(st0.denom) < 1e-6))
    return dict(ridge=lam_star, test_error=e_star, converged=conv, fallback=ill & conv, iterations=iters, rank=rank)


def optimal_ridge_batch(
    model: DeepRF,
    samples,
    noise=0.0,
    target="linear",
    *,
    input_dim=None,
    widths: Sequence | None = None,
    loss: str = "square",
    bounds=RIDGE_BOUNDS,
    tol: float = 1e-9,
    fallback: str = "dd",
    max_iter: int = 200,
    progress: bool | None = None,
    warn: bool = True,
) -> OptimalRidgeResult:
    """The ridge ``lambda*`` minimising the test error, per lane (vectorized).

    Minimises ``E_test(kappa_0)`` over the physical branch with
    ``lambda(kappa_0) = kappa_L (1 - df1_L/n)`` in ``bounds`` (default
    ``[1e-10, 1e4]``, as :func:`rfq_theory.sweeps.optimal_ridge`), by a
    per-lane golden-section search in ``t = log(kappa_0 - kappa_0(lambda=0))``
    to ``tol`` (absolute in ``t``, about relative in ``lambda*``), then
    compares with the ridgeless end point ``lambda = 0``.  Each trial point
    is one closed-form walk of the chain, so a map of the optimal error costs
    a small multiple of a fixed-ridge map.  Lanes whose optimum is
    ill-conditioned (the cancellation rule of :func:`solve_batch`) get their
    error from ``predict(..., ridge=lambda*, digits=FALLBACK_DIGITS)``
    (``fallback="dd"`` does the same here).

    Parameters are those of :func:`solve_batch`; returns an
    :class:`OptimalRidgeResult`.
    """
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(sorted(LOSSES))}, got {loss!r}")
    if fallback not in FALLBACKS:
        raise InputError(f"fallback must be one of {', '.join(FALLBACKS)}, got {fallback!r}")
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be two numbers (low, high), got {bounds!r}") from None
    if not 0 < lo < hi < math.inf:
        raise InputError(f"bounds must satisfy 0 < low < high < inf, got {bounds!r}")
    if not 0 < tol < 1:
        raise InputError(f"tol must satisfy 0 < tol < 1, got {tol!r}")
    ch = chain_model(model, target)
    shape, n, _, delta, sizes = _lanes(model, samples, 0.0, noise, input_dim, widths)
    N = n.shape[0]
    res = {
        "ridge": np.empty(N),
        "test_error": np.empty(N),
        "rank": np.empty(N),
        "converged": np.empty(N, bool),
        "fallback": np.empty(N, bool),
        "iterations": np.empty(N, np.int32),
    }
    chunks = range(0, N, CHUNK)
    show = progress if progress is not None else (N > CHUNK and _isatty())
    if show and len(chunks) > 1:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="lanes", unit="chunk", leave=False)
    for start in chunks:
        sl = slice(start, min(start + CHUNK, N))
        part = _optimal_chunk(ch, n[sl], delta[sl], [s[sl] for s in sizes], LOSSES[loss], (lo, hi), tol, max_iter)
        for k in res:
            res[k][sl] = part[k]
    conv, fb = res["converged"], res["fallback"]
    messages = []
    lanes = np.flatnonzero(fb)
    if lanes.size and fallback in ("mpmath", "dd"):
        solved = _fallback_lanes(
            model,
            target,
            n,
            res["ridge"],
            delta,
            sizes,
            lanes.tolist(),
            progress if progress is not None else _isatty(),
        )
        for i, p in solved.items():
            if p is None:
                conv[i] = False
            else:
                res["test_error"][i] = float(p.test_error)
        messages.append(f"{lanes.size} ill-conditioned lane(s) evaluated with mpmath at {FALLBACK_DIGITS} digits")
    elif lanes.size:
        conv[lanes] = False
        messages.append(f"{lanes.size} ill-conditioned lane(s) left as NaN (fallback='none')")
    res["test_error"][~conv] = np.nan
    res["ridge"][~conv] = np.nan
    _report_failures(conv, N, messages, warn)
    return OptimalRidgeResult(
        ridge=res["ridge"].reshape(shape),
        test_error=res["test_error"].reshape(shape),
        converged=conv.reshape(shape),
        fallback=fb.reshape(shape),
        iterations=res["iterations"].reshape(shape),
        rank=res["rank"].reshape(shape),
        messages=messages,
    )
