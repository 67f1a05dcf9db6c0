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

This module is the scalar driver of :mod:`rfq_theory.chain`: given
``kappa_0`` the layer equations are walked upward in closed form
(:func:`rfq_theory.chain.walk`, ``df1_l`` in its cancellation-free form
``df1_{l-1} + c_l k_{l-1} / (a_l kappa_{l-1})``), carrying the derivatives
``d kappa_l / d kappa_0`` and ``d df1_l / d kappa_0`` (forward-mode implicit
differentiation), so the system becomes one scalar equation in ``kappa_0``
that is solved by the chain's safeguarded Newton-bisection
(:func:`rfq_theory.chain.rtsafe`) inside the physical branch (all
``kappa_l > 0``, above :func:`rfq_theory.chain.branch_edge`).  Python floats
(the fast path for sweeps) and mpmath numbers of the calling thread's
private context at any precision run the same code; ``df2``, ``s``, ``s'``
and the errors come from :mod:`rfq_theory.observables`.

A layer with ``kappa1_l = 0`` (an even activation) forgets its input: the
chain then restarts at that layer from ``Omega_l = kappastar_l^2 I`` and
the signal term ``s`` is zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeAlias

from .chain import (
    FLOAT,
    Chain,
    SolverError,
    WalkState,
    bracket_above,
    branch_edge,
    build_chain,
    layer_residuals,
    real,
    ridge_equation,
    ridgeless_equation,
    rtsafe,
    walk,
)
from .checks import check_digits, check_nonnegative, check_positive
from .gaussian import GUARD_DIGITS
from .model import DeepRF
from .observables import chain_readout, error_terms, target_moments, train_error
from .precision import MPF, freeze
from .precision import mp as mpmath
from .results import Diagnostics, float_numbers, freeze_numbers, result_repr, to_jsonable

__all__ = [
    "Prediction",
    "SolverError",
    "predict",
    "walk",
    "Chain",
    "build_chain",
    "WalkState",
    "target_moments",
]  # walk, Chain, build_chain, WalkState, SolverError: from rfq_theory.chain; target_moments: from observables

#: When cancellations in the walk amplify rounding errors by more than this
#: factor (about 5 of the 16 float digits lost), the float path re-solves the
#: point with mpmath so that both paths agree to 1e-9.
FLOAT_AMPLIFICATION_LIMIT = 1e5
#: Most extra working digits spent on an ill-conditioned point; a point that
#: needs more raises :class:`SolverError` rather than return a wrong number.
MAX_EXTRA_DIGITS = 150

#: A result number: ``float`` on the fast path, ``mpmath.mpf`` otherwise.
Number: TypeAlias = float | MPF


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

    _headline = ("test_error", "train_error", "effective_ridges", "df1", "df2", "samples", "ridge", "noise", "regime")
    __repr__ = result_repr

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

    Notes
    -----
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
    ar = real(ctx)
    to_number = float if ar is FLOAT else mpmath.mpf
    dps = max(30, coeff_digits)
    layers = model.layers(coeff_digits)
    sizes = [to_number(k) for k in model.sizes(dps)]
    n = to_number(check_positive(samples, "samples", dps))
    lam = to_number(check_nonnegative(ridge, "ridge", dps))
    delta = to_number(check_nonnegative(noise, "noise", dps))
    with mpmath.workdps(max(coeff_digits, 20)):
        rho_mp, var_f_mp = target_moments(target, coeff_digits)
    rho, var_f = to_number(rho_mp), to_number(var_f_mp)
    measure = model.base_measure(None if ar is FLOAT else ctx.dps)
    chain = build_chain(sizes, layers, to_number, 16 if ar is FLOAT else ctx.dps, measure)
    calls = [0]
    one = to_number(1)
    rho_eff = rho if chain.signal else 0 * one  # a layer with kappa1 = 0 erased the signal
    var_y = var_f + delta

    def ridge_fun(k0):
        calls[0] += 1
        st = walk(chain, k0, ar)
        return None if st is None else ridge_equation(st, n, lam)

    def df1_fun(k0):  # increasing in kappa_0: n - df1_L
        calls[0] += 1
        st = walk(chain, k0, ar)
        return None if st is None else ridgeless_equation(st, n)

    edge, edge_state = branch_edge(chain, ar)

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
            hi = bracket_above(df1_fun, max(edge * 2, one), ar)
            kappa0 = rtsafe(df1_fun, edge, hi, guess, ar, "ridgeless", stats)
    else:
        hi = bracket_above(ridge_fun, max(edge * 2, one, guess or one), ar)
        first = ridge_fun(edge)
        if first is not None and first[0] >= 0:
            # the root lies within rounding of the branch edge: kappa_0 is the edge (for
            # n > rank, kappa_L = lambda / (1 - rank/n) to first order in lambda)
            kappa0, at_edge = edge, n > chain.rank
        else:
            kappa0 = rtsafe(ridge_fun, edge, hi, guess, ar, "ridge", stats)

    state = walk(chain, kappa0, ar) if not at_edge else edge_state
    if state is None:
        state = edge_state
    kappas = list(state.kappas)
    df2, s, s_prime = chain_readout(
        kappa0, state.kappa, state.dkappa, state.df1, state.ddf1, chain.signal, chain.measure
    )
    if at_edge:
        # kappa_L = lambda / (1 - rank/n) (0 without ridge) and df1 = df2 = rank
        kappa_L = lam / ((n - chain.rank) / n)
        df1 = df2 = chain.rank
        s_minus = s
        kappas[-1] = kappa_L
        denom = (n - chain.rank) / n
    else:
        kappa_L = state.kappa
        df1 = state.df1
        s_minus = s - kappa_L * s_prime
        denom = 1 - df2 / n
    if not denom > 0:
        raise SolverError(f"1 - df2/n = {_fmt(denom)} <= 0 at the solution: the solver left the physical branch")
    bias, noise_part, test = error_terms(var_f, delta, rho_eff, s_minus, df2, n, denom)
    train = train_error(test, n, lam, kappa_L, chain.rank)

    residuals = _residuals(chain, state, n, lam, at_edge, ar)
    # rounding errors amplified by cancellations in the walk and by 1/(1 - df2/n)
    condition = (1 if at_edge else float(state.cancellation)) / float(denom)
    fallback = ar is FLOAT and condition > FLOAT_AMPLIFICATION_LIMIT
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
        working_digits=16 if ar is FLOAT else ctx.dps,
        condition=condition,
    )


def _residuals(chain: Chain, state: WalkState, n, lam, at_edge, ar):
    """Relative residuals of every equation, recomputed from the walk ``state`` at the solution.

    The layer equations (:func:`rfq_theory.chain.layer_residuals`), then the
    ridge equation ``kappa_L (1 - D_L/n) = lambda``.  At the branch edge
    (ridgeless, under-parameterized) the last entry is ``kappa_L`` of the
    edge point found (the equation there is ``kappa_L = 0``).
    """
    out = layer_residuals(chain, state, ar)
    kappa = state.kappa
    out.append(abs(kappa) if at_edge else abs(kappa * (1 - state.df1 / n) - lam) / max(lam, kappa))
    return out


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
