"""Multi-layer fixed-point solver (``docs/theory.md``, sections 3-4).

Unknowns: the effective ridges ``kappa_0, ..., kappa_L > 0``.  With
``a_l = kappa1_l^2`` and ``c_l = kappastar_l^2`` the equations are

    base:     df1_0(k) = k_0 c_0 / (c_0 + k),   s_0(k) = 1 / (1 + k)        (c_0 = 1)
    layer l:  a_l kappa_{l-1} (k_l - df1_{l-1}(kappa_{l-1})) / k_{l-1} = kappa_l + c_l
              df1_l(kappa_l) = k_l - k_{l-1} kappa_l / (a_l kappa_{l-1})
              s_l(kappa_l)   = s_{l-1}(kappa_{l-1})
    ridge:    lambda = kappa_L (1 - df1_L(kappa_L) / n)

and the errors

    E_test  = [Var y - rho (s(kappa) - kappa s'(kappa))] / (1 - df2(kappa) / n)
    E_train = (lambda / kappa)^2 E_test,        df2 = df1 + kappa df1'.

Given ``kappa_0`` the layer equations are walked upward in closed form
(:func:`walk`), carrying the derivatives ``d kappa_l / d kappa_0`` and
``d df1_l / d kappa_0`` (forward-mode implicit differentiation), so the
system becomes one scalar equation in ``kappa_0`` that is solved by a
safeguarded Newton-bisection iteration inside the physical branch (all
``kappa_l > 0``).  One implementation serves both number types: Python
floats (the fast path for sweeps) and ``mpmath.mpf`` at any precision.

A layer with ``kappa1_l = 0`` (an even activation) forgets its input: the
chain then restarts at that layer from ``Omega_l = kappastar_l^2 I`` and
the signal term ``s`` is zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

from .checks import InputError, check_digits, check_nonnegative, check_positive
from .gaussian import GUARD_DIGITS
from .model import DeepRF
from .observables import error_terms, target_moments, train_error
from .precision import freeze
from .precision import mp as mpmath
from .results import Diagnostics, float_numbers, freeze_numbers, to_jsonable

__all__ = [
    "Prediction",
    "SolverError",
    "predict",
    "walk",
    "Chain",
    "build_chain",
    "target_moments",
]  # target_moments: re-exported from observables

#: When cancellations in the walk amplify rounding errors by more than this
#: factor (about 5 of the 16 float digits lost), the float path re-solves the
#: point with mpmath so that both paths agree to 1e-9.
FLOAT_AMPLIFICATION_LIMIT = 1e5
#: Most extra working digits spent on an ill-conditioned point; a point that
#: needs more raises :class:`SolverError` rather than return a wrong number.
MAX_EXTRA_DIGITS = 150

#: A result number: ``float`` on the fast path, ``mpmath.mpf`` otherwise.
Number = Union[float, "mpmath.mpf"]


class SolverError(ArithmeticError):
    """The fixed-point equations have no physical solution or did not converge."""


# --------------------------------------------------------------------------
# The chain of layer equations
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """Numbers entering the fixed-point equations, in one number type.

    ``layers`` holds ``(k_{l-1}, k_l, a_l = kappa1_l^2, c_l = kappastar_l^2)``
    for the layers after the last restart; ``first`` is the index of the
    base (0 unless a layer has ``kappa1 = 0``); ``rank`` is the rank of
    ``Omega_L`` (the interpolation threshold of the ridgeless estimator).
    """

    base_dim: object
    base_scale: object
    signal: bool
    layers: tuple
    first: int
    rank: object


def build_chain(sizes, layer_coeffs, to_number=float, dps=16) -> Chain:
    """Assemble a :class:`Chain` from sizes ``(k_0..k_L)`` and per-layer coefficients.

    A layer with ``kappa1^2 <= kappastar^2 10^(-2 dps)`` (``dps``: the working
    digits) counts as ``kappa1 = 0`` and restarts the chain.
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
    rank = base_dim
    for index in range(first + 1, len(sizes)):
        lc = layer_coeffs[index - 1]
        a = to_number(lc.kappa1) ** 2
        c = to_number(lc.kappa_star) ** 2
        k_prev, k = to_number(sizes[index - 1]), to_number(sizes[index])
        layers.append((k_prev, k, a, c))
        rank = k if c > 0 else min(k, rank)
    return Chain(base_dim, base_scale, signal, tuple(layers), first, rank)


@dataclass
class WalkState:
    """Result of walking the chain upward from ``kappa_0``.

    ``kappas[l]`` and ``dkappas[l] = d kappa_l / d kappa_0`` for the chain's
    layers (index 0 is the base), ``df1`` and ``ddf1 = d df1_L / d kappa_0``
    of the top layer. ``cancellation`` bounds the factor by which rounding
    errors were amplified by subtractions of nearly equal numbers
    (``k_l - df1_{l-1}`` and ``kappa_l = (...) - c_l``).
    """

    kappas: list
    dkappas: list
    df1: object
    ddf1: object
    cancellation: object = 1


def walk(chain: Chain, kappa0) -> WalkState | None:
    """Walk the layer equations upward from ``kappa_0``.

    Implements, for each layer,
    ``kappa_l = a_l kappa_{l-1} (k_l - df1_{l-1}) / k_{l-1} - c_l`` and
    ``df1_l = k_l - k_{l-1} kappa_l / (a_l kappa_{l-1})``, with their
    derivatives in ``kappa_0``.  Returns ``None`` outside the physical
    branch (some ``kappa_l <= 0``).
    """
    c0 = chain.base_scale
    kap = kappa0
    dkap = 1
    denom = c0 + kappa0
    D = chain.base_dim * c0 / denom
    dD = -chain.base_dim * c0 / (denom * denom)
    kappas, dkappas = [kap], [dkap]
    cancel = 1
    for k_prev, k, a, c in chain.layers:
        gap = k - D
        new = a * kap * gap / k_prev - c
        if not new > 0:
            return None
        cancel *= max(1, max(k, k_prev) / gap) * (1 + c / new)
        dnew = a / k_prev * (dkap * gap - kap * dD)
        D_new = k - k_prev * new / (a * kap)
        dD = -k_prev / a * (dnew * kap - new * dkap) / (kap * kap)
        D = D_new
        kap, dkap = new, dnew
        kappas.append(kap)
        dkappas.append(dkap)
    return WalkState(kappas, dkappas, D, dD, cancel)


def _edge(chain: Chain, ctx):
    """Lower end of the physical branch: ``inf {kappa_0 : walk valid}``.

    Returns ``(edge, state)`` with ``state`` the walk at the smallest valid
    point found (``edge`` itself when the branch reaches ``kappa_0 = 0``).
    """
    # smallest kappa_0 tried: far below the working precision, but with a
    # square that still does not underflow (floats)
    tiny = ctx.mpf("1e-150") if ctx is mpmath.fp else ctx.mpf(10) ** (-2 * ctx.dps - 50)
    state = walk(chain, tiny)
    if state is not None:
        return tiny, state
    hi = ctx.mpf(1)
    while walk(chain, hi) is None:
        hi *= 4
        if hi > ctx.mpf("1e300"):
            raise SolverError("no physical solution: the layer equations have no branch with all kappa_l > 0")
    lo = tiny
    tol = ctx.eps * 4
    for _ in range(100000):
        if hi - lo <= tol * hi:
            break
        mid = ctx.sqrt(lo * hi) if hi > 4 * lo else (lo + hi) / 2
        if walk(chain, mid) is None:
            lo = mid
        else:
            hi = mid
    return hi, walk(chain, hi)


def _rtsafe(fun, lo, hi, guess, ctx, what, stats=None):
    """Root of increasing ``fun`` on ``(lo, hi)``: Newton steps kept inside a shrinking bracket.

    ``fun(x)`` returns ``(f, df)`` or ``None`` where the walk is invalid
    (treated as lying below the root).
    """
    tol = ctx.eps * 8
    x = guess if guess is not None and lo < guess < hi else None
    if x is None:
        x = ctx.sqrt(lo * hi) if hi > 4 * lo and lo > 0 else (lo + hi) / 2
    for iteration in range(1, 2001):
        if stats is not None:
            stats["iterations"] = iteration
        val = fun(x)
        if val is None:
            lo = x
            step_x = ctx.sqrt(lo * hi) if hi > 4 * lo and lo > 0 else (lo + hi) / 2
        else:
            f, df = val
            if f == 0:
                return x
            if f < 0:
                lo = x
            else:
                hi = x
            newton = x - f / df if df > 0 else None
            if newton is not None and lo < newton < hi:
                step_x = newton
            else:
                step_x = ctx.sqrt(lo * hi) if hi > 4 * lo and lo > 0 else (lo + hi) / 2
        if abs(step_x - x) <= tol * abs(x) or hi - lo <= tol * hi:
            return step_x
        x = step_x
    raise SolverError(f"the {what} iteration did not converge (bracket [{lo}, {hi}])")


# --------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """Asymptotic prediction for one model, sample size and ridge.

    Numbers are ``float`` on the fast path (``digits=None``) and
    ``mpmath.mpf`` otherwise.

    Attributes
    ----------
    test_error, train_error:
        ``E_test`` (noise included) and ``E_train``; ``inf`` at the
        interpolation threshold.
    effective_ridges:
        ``(kappa_0, ..., kappa_L)``; ``None`` for layers before a restart.
    df1, df2:
        ``df1(kappa_L)``, ``df2(kappa_L)``.
    s, s_prime:
        ``s(kappa_L)`` and its derivative ``d s / d kappa_L``.
    bias, noise_part:
        ``E_test = bias + noise_part`` with
        ``bias = [Var f* - rho (s - kappa s')] / (1 - df2/n)`` and
        ``noise_part = Delta / (1 - df2/n)`` (the irreducible ``Delta``
        plus the variance the noise induces).
    var_y, rho:
        ``Var y = Var f*(g) + Delta`` and ``rho = mu1(f*)^2``.
    regime:
        ``"ridge"``, ``"ridgeless-underparameterized"``,
        ``"ridgeless-overparameterized"`` or ``"interpolation-threshold"``.
    residuals:
        Absolute residual of each layer equation and the ridge equation,
        recomputed at the solution.
    message:
        Human-readable note (e.g. why the error is infinite), else ``""``.
    precision_fallback:
        True when the float path (``digits=None``) found the point
        ill-conditioned and re-solved it with mpmath (the numbers are then
        the rounded mpmath ones).
    iterations, function_calls:
        Root-finder iterations and walks of the layer equations spent on
        the solution (the last solve when the precision was raised).
    converged:
        Always True on return (non-convergence raises :class:`SolverError`).
    working_digits:
        Decimal digits the solution was computed with (16 for IEEE doubles).
    condition:
        Factor by which rounding errors are amplified at the solution
        (cancellations in the walk times ``1 / (1 - df2/n)``); the working
        precision is raised until ``log10(condition)`` digits are covered.

    On the mpmath path every number is an ``mpmath.mpf`` frozen at
    ``digits`` significant digits, so ``str(p.test_error)`` prints
    ``digits`` digits (see :mod:`rfq_theory.precision`).
    """

    test_error: Number
    train_error: Number
    effective_ridges: tuple[Number | None, ...]
    df1: Number
    df2: Number
    s: Number | None
    s_prime: Number | None
    bias: Number
    noise_part: Number
    var_y: Number
    rho: Number
    samples: Number
    ridge: Number
    noise: Number
    regime: str
    digits: int | None
    residuals: tuple = ()
    layers: tuple = ()
    message: str = ""
    precision_fallback: bool = False
    kappa0: object = field(default=None, repr=False)
    iterations: int = 0
    function_calls: int = 0
    converged: bool = True
    working_digits: int = 16
    condition: float = 1.0

    @property
    def effective_ridge(self):
        """``kappa_L``, the effective ridge of the readout."""
        return self.effective_ridges[-1]

    @property
    def diagnostics(self) -> Diagnostics:
        """The :class:`~rfq_theory.results.Diagnostics` record of this prediction."""
        res = [float(r) for r in self.residuals if r is not None]
        return Diagnostics(
            status="fallback" if self.precision_fallback else "ok",
            converged=self.converged,
            message=self.message,
            iterations=self.iterations,
            function_calls=self.function_calls,
            residual=max(res) if res else 0.0,
            working_digits=self.working_digits,
            condition=float(self.condition),
            fallback="mpmath" if self.precision_fallback or self.digits is not None else "float",
        )

    def as_dict(self, digits=None):
        """JSON-ready dict (:func:`rfq_theory.results.to_jsonable`); numbers as strings of ``digits`` digits."""
        return to_jsonable(self, digits or self.digits or 17)


def predict(
    model: DeepRF,
    samples,
    ridge=0,
    noise=0,
    target="linear",
    digits: int | None = None,
    guess=None,
) -> Prediction:
    """Asymptotic test and train error of ``model`` trained on ``samples`` points.

    Parameters
    ----------
    model:
        A :class:`~rfq_theory.model.DeepRF`.
    samples:
        ``n > 0`` (only ratios to the sizes matter).
    ridge:
        ``lambda >= 0``; ``0`` is the minimum-norm interpolator.
    noise:
        Label-noise variance ``Delta >= 0``.
    target:
        ``f*``: any activation name or safe expression (default ``linear``).
    digits:
        ``None`` for the float fast path, else the number of significant
        digits of the mpmath path (residuals below ``10**-(digits-5)``).
    guess:
        Optional warm start for ``kappa_0`` (used by sweeps).

    Solves the fixed-point equations of the module docstring on the
    physical branch and returns a :class:`Prediction`.
    """
    if not isinstance(model, DeepRF):
        raise TypeError(f"model must be a DeepRF, got {type(model).__name__}")
    if digits is not None:
        digits = check_digits(digits)
    check_positive(samples, "samples")
    check_nonnegative(ridge, "ridge")
    check_nonnegative(noise, "noise")
    if digits is None:
        pred = _predict(model, samples, ridge, noise, target, None, guess)
        if not pred.precision_fallback:
            return pred
        # ill-conditioned for doubles: solve with enough digits for 17 correct ones
        hi = _predict_adaptive(model, samples, ridge, noise, target, 17, None, _extra_for(pred.condition))
        return _to_float(hi, fallback=True)
    return _predict_adaptive(model, samples, ridge, noise, target, digits, guess, 0)


def _extra_for(condition) -> int:
    """Guard digits beyond GUARD_DIGITS that an amplification ``condition`` costs."""
    lost = math.log10(float(condition)) if condition and float(condition) > 1 else 0.0
    return max(0, int(math.ceil(lost)) - GUARD_DIGITS + 5)


def _predict_adaptive(model, samples, ridge, noise, target, digits, guess, extra):
    """Solve at ``digits + GUARD_DIGITS + extra`` and raise ``extra`` until it covers the conditioning."""
    while True:
        pred = _predict(model, samples, ridge, noise, target, digits, guess, extra_digits=extra)
        need = _extra_for(pred.condition)
        if need <= extra:
            return _freeze_prediction(pred, digits)
        if need > MAX_EXTRA_DIGITS:
            raise SolverError(
                f"this point is too ill-conditioned: rounding errors are amplified by about "
                f"1e{int(math.log10(float(pred.condition)))}, more than the {MAX_EXTRA_DIGITS} extra working "
                "digits the solver spends (move samples away from the interpolation threshold or use a larger ridge)"
            )
        extra = need + 5


def _freeze_prediction(pred: Prediction, digits) -> Prediction:
    from dataclasses import replace

    return replace(freeze_numbers(pred, digits, keep=("kappa0",)), kappa0=freeze(pred.kappa0, pred.working_digits))


def _to_float(pred: Prediction, fallback=False) -> Prediction:
    from dataclasses import replace

    return replace(float_numbers(pred), digits=None, precision_fallback=fallback)


def _predict(model, samples, ridge, noise, target, digits, guess, extra_digits=0):
    if digits is None:
        ctx = mpmath.fp
        coeff_digits = 17
        return _solve(model, samples, ridge, noise, target, ctx, coeff_digits, None, guess)
    work = digits + GUARD_DIGITS + extra_digits
    ctx = mpmath.mp  # this thread's private context (rfq_theory.precision)
    with ctx.workdps(work):
        pred = _solve(model, samples, ridge, noise, target, ctx, work, digits, guess)
    return pred


def _solve(model, samples, ridge, noise, target, ctx, coeff_digits, digits, guess):
    to_number = float if ctx is mpmath.fp else mpmath.mpf
    dps = max(30, coeff_digits)
    layers = model.layers(coeff_digits)
    sizes = [to_number(k) for k in model.sizes(dps)]
    n = to_number(check_positive(samples, "samples", dps))
    lam = to_number(check_nonnegative(ridge, "ridge", dps))
    delta = to_number(check_nonnegative(noise, "noise", dps))
    with mpmath.workdps(max(coeff_digits, 20)):
        rho_mp, var_f_mp = target_moments(target, coeff_digits)
    rho, var_f = to_number(rho_mp), to_number(var_f_mp)
    chain = build_chain(sizes, layers, to_number, 16 if ctx is mpmath.fp else ctx.dps)
    calls = [0]
    one = to_number(1)
    rho_eff = rho if chain.signal else 0 * one  # a layer with kappa1 = 0 erased the signal
    var_y = var_f + delta

    def lam_of(state):
        return state.kappas[-1] * (one - state.df1 / n)

    def ridge_fun(k0):
        calls[0] += 1
        st = walk(chain, k0)
        if st is None:
            return None
        f = lam_of(st) - lam
        df = st.dkappas[-1] * (one - st.df1 / n) - st.kappas[-1] * st.ddf1 / n
        return f, df

    def df1_fun(k0):  # increasing in kappa_0: n - df1_L
        calls[0] += 1
        st = walk(chain, k0)
        if st is None:
            return None
        return n - st.df1, -st.ddf1

    edge, edge_state = _edge(chain, ctx)

    regime, message = "ridge", ""
    at_edge = False
    stats = {"iterations": 0}
    if lam == 0:
        if n > chain.rank:
            regime, at_edge = "ridgeless-underparameterized", True
            kappa0 = edge
        elif n == chain.rank:
            regime = "interpolation-threshold"
            message = (
                f"samples = rank(Omega_L) = {_fmt(chain.rank)}: the ridgeless (minimum-norm) estimator sits at "
                "the interpolation threshold and its test error is infinite; use ridge > 0 or move samples"
            )
            return _threshold_prediction(model, layers, n, lam, delta, var_y, rho_eff, regime, message, digits, ctx)
        else:
            regime = "ridgeless-overparameterized"
            hi = _bracket_hi(df1_fun, max(edge * 2, one), ctx)
            kappa0 = _rtsafe(df1_fun, edge, hi, guess, ctx, "ridgeless", stats)
    else:
        hi = _bracket_hi(ridge_fun, max(edge * 2, one, guess or one), ctx)
        start = edge
        first = ridge_fun(start)
        if first is not None and first[0] >= 0 and n > chain.rank:
            # the root lies within rounding of the branch edge: kappa_0 is the
            # edge and kappa_L = lambda / (1 - rank/n) to first order in lambda
            kappa0, at_edge = start, True
        elif first is not None and first[0] >= 0:
            kappa0 = start
        else:
            kappa0 = _rtsafe(ridge_fun, start, hi, guess, ctx, "ridge", stats)

    state = walk(chain, kappa0) if not at_edge else edge_state
    if state is None:
        state = edge_state
    kappas = list(state.kappas)
    if at_edge:
        if lam > 0:
            kappa_L = lam / (one - chain.rank / n)
        else:
            kappa_L = ctx.zero if ctx is not mpmath.fp else 0.0
        df1 = df2 = chain.rank
        s = one / (one + kappa0) if chain.signal else 0 * one
        s_minus = s
        s_prime = -((one / (one + kappa0)) ** 2) / state.dkappas[-1] if chain.signal else 0 * one
        kappas[-1] = kappa_L
    else:
        kappa_L = kappas[-1]
        dk = state.dkappas[-1]
        df1 = state.df1
        df2 = df1 + kappa_L * state.ddf1 / dk
        if chain.signal:
            s = one / (one + kappa0)
            s_prime = -(s * s) / dk
        else:
            s = s_prime = 0 * one
        s_minus = s - kappa_L * s_prime
    denom = one - df2 / n
    if not denom > 0:
        raise SolverError(f"1 - df2/n = {_fmt(denom)} <= 0 at the solution: the solver left the physical branch")
    bias, noise_part, test = error_terms(var_f, delta, rho_eff, s_minus, df2, n)
    train = train_error(test, n, lam, kappa_L, chain.rank)

    residuals = _residuals(chain, state.kappas, n, lam, at_edge)
    # rounding errors amplified by cancellations in the walk and by 1/(1 - df2/n)
    condition = (1 if at_edge else float(state.cancellation)) / float(denom)
    fallback = ctx is mpmath.fp and condition > FLOAT_AMPLIFICATION_LIMIT
    full_kappas = tuple([None] * chain.first + kappas)
    return Prediction(
        test_error=test,
        train_error=train,
        effective_ridges=full_kappas,
        df1=df1,
        df2=df2,
        s=s,
        s_prime=s_prime,
        bias=bias,
        noise_part=noise_part,
        var_y=var_y,
        rho=rho_eff,
        samples=n,
        ridge=lam,
        noise=delta,
        regime=regime,
        digits=digits,
        residuals=tuple(residuals),
        layers=tuple(layers),
        message=message,
        precision_fallback=fallback,
        kappa0=kappa0,
        iterations=stats["iterations"],
        function_calls=calls[0],
        converged=True,
        working_digits=16 if ctx is mpmath.fp else ctx.dps,
        condition=condition,
    )


def _residuals(chain, kappas, n, lam, at_edge):
    """Relative residuals of every equation, recomputed from the walked kappas.

    At the branch edge (ridgeless, under-parameterized) the last entry is
    ``kappa_L`` of the edge point found (the equation there is ``kappa_L = 0``).
    """
    c0 = chain.base_scale
    D = chain.base_dim * c0 / (c0 + kappas[0])
    out = []
    for (k_prev, k, a, c), kap_prev, kap in zip(chain.layers, kappas[:-1], kappas[1:]):
        lhs = a * kap_prev * (k - D) / k_prev
        scale = max(abs(lhs), kap + c)
        out.append(abs(lhs - (kap + c)) / scale if scale > 0 else 0 * scale)
        D = k - k_prev * kap / (a * kap_prev)
    if at_edge:
        out.append(abs(kappas[-1]))
    else:
        out.append(abs(kappas[-1] * (1 - D / n) - lam) / max(lam, kappas[-1]))
    return out


def _bracket_hi(fun, start, ctx):
    hi = start
    for _ in range(2000):
        val = fun(hi)
        if val is not None and val[0] > 0:
            return hi
        hi *= 4
    raise SolverError("could not bracket the effective ridge (no root below kappa_0 = 4^2000)")


def _threshold_prediction(model, layers, n, lam, delta, var_y, rho, regime, message, digits, ctx):
    inf = ctx.inf
    nan_free = 0.0 if ctx is mpmath.fp else mpmath.mpf(0)
    return Prediction(
        test_error=inf,
        train_error=nan_free,
        effective_ridges=tuple([None] * (model.depth + 1)),
        df1=n,
        df2=n,
        s=None,
        s_prime=None,
        bias=inf,
        noise_part=inf if delta > 0 else nan_free,
        var_y=var_y,
        rho=rho,
        samples=n,
        ridge=lam,
        noise=delta,
        regime=regime,
        digits=digits,
        layers=tuple(layers),
        message=message,
    )


def _fmt(x):
    return mpmath.nstr(mpmath.mpf(x), 8)
