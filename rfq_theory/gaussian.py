"""High-precision Gaussian expectations by quadrature (mpmath).

``gaussian_expectation(f, v, digits)`` computes ``E f(u)``, ``u ~ N(0, v)``,
as ``int f(sqrt(v) t) phi(t) dt`` with tanh-sinh quadrature, split at the
kinks of ``f`` (mapped to ``t = c / sqrt(v)``), at 0 and at a few points in
the tails so that peaks pushed outwards by growing integrands are resolved.
Precision is set locally with ``mpmath.workdps``.
"""

from __future__ import annotations

import time

from .precision import mp as mpmath

__all__ = ["gaussian_expectation", "check_square_integrable", "GaussianIntegralError", "GUARD_DIGITS"]

#: Extra working digits used inside the quadrature.
GUARD_DIGITS = 10

_TAIL_POINTS = (-12, -6, -3, 3, 6, 12)


class GaussianIntegralError(ValueError):
    """The Gaussian integral diverges, is undefined, or did not converge."""


class _OutOfTime(Exception):
    pass


#: Wall-clock seconds one Gaussian expectation may take before it is abandoned
#: with :class:`GaussianIntegralError` (so no input hangs the quadrature).
QUADRATURE_TIME_LIMIT = 30.0


def _points(kinks, sd):
    pts = {mpmath.mpf(0)}
    pts.update(mpmath.mpf(p) for p in _TAIL_POINTS)
    for c in kinks:
        pts.add(mpmath.mpf(c) / sd)
    return [-mpmath.inf] + sorted(pts) + [mpmath.inf]


def check_square_integrable(fn, variance, what="activation"):
    """Raise :class:`GaussianIntegralError` unless ``E fn(u)^2 < inf`` looks certain.

    Checks that ``fn`` is real and finite on a grid of the bulk, and that
    ``log fn(sqrt(v) t)^2 - t^2/2`` falls off in both tails (at ``|t|`` = 30
    and 60), which separates growth slower than ``exp(t^2/4)`` from the
    divergent cases such as ``exp(u**2)`` at ``v >= 1/4``.
    """
    with mpmath.workdps(30):
        v = mpmath.mpf(variance)
        sd = mpmath.sqrt(v)
        for t in mpmath.linspace(-8, 8, 33):
            val = _eval(fn, sd * t, what)
            if not mpmath.isfinite(val):
                raise GaussianIntegralError(f"{what} is not finite at u = {mpmath.nstr(sd * t, 6)}")
        for sgn in (1, -1):
            logs = []
            for t in (30, 60):
                val = _eval(fn, sd * sgn * t, what)
                if not mpmath.isfinite(val):
                    raise GaussianIntegralError(
                        f"{what} has an infinite Gaussian second moment at variance {mpmath.nstr(v, 8)}"
                    )
                logs.append(2 * mpmath.log(abs(val)) - mpmath.mpf(t) ** 2 / 2 if val != 0 else -mpmath.inf)
            if logs[1] > -100 or logs[1] > logs[0] - 50:
                raise GaussianIntegralError(
                    f"{what} has an infinite Gaussian second moment at variance {mpmath.nstr(v, 8)} "
                    "(it grows like exp(u^2/(4v)) or faster)"
                )


def _eval(fn, x, what):
    try:
        val = fn(x)
    except (ZeroDivisionError, ValueError, OverflowError, MemoryError) as exc:
        raise GaussianIntegralError(f"{what} is undefined at u = {mpmath.nstr(x, 6)} ({exc})") from None
    if hasattr(val, "_mpc_"):
        if abs(val.imag) > abs(val) * mpmath.mpf(10) ** (-mpmath.mp.dps + 5) and val.imag != 0:
            raise GaussianIntegralError(f"{what} is not real at u = {mpmath.nstr(x, 6)}")
        val = val.real
    try:
        return mpmath.mpf(val)
    except (TypeError, ValueError):
        raise GaussianIntegralError(f"{what} is not a real number at u = {mpmath.nstr(x, 6)}") from None


def gaussian_expectation(fn, variance, digits=15, kinks=(), what="activation"):
    """``E fn(u)`` for ``u ~ N(0, variance)`` to ``digits`` significant digits.

    Parameters
    ----------
    fn:
        mpmath-callable of one argument.
    variance:
        Positive number (anything ``mpmath.mpf`` accepts).
    digits:
        Requested significant digits; the quadrature runs with
        :data:`GUARD_DIGITS` more.
    kinks:
        Points in ``u`` where ``fn`` is not smooth.

    Returns an ``mpf`` rounded to the caller's working precision.
    Raises :class:`GaussianIntegralError` when the quadrature's error
    estimate is above the requested tolerance.
    """
    with mpmath.workdps(digits + GUARD_DIGITS):
        v = mpmath.mpf(variance)
        sd = mpmath.sqrt(v)
        norm = 1 / mpmath.sqrt(2 * mpmath.pi)

        deadline = time.monotonic() + QUADRATURE_TIME_LIMIT

        # beyond |t| = cutoff the weight exp(-t^2/2) is below 10^-(digits + 30) even
        # against growth like exp(t^2/4) (checked by check_square_integrable):
        # the integrand is 0 there, and e.g. cos(exp(u)) is never evaluated at
        # astronomically large arguments
        cutoff = 2 * mpmath.sqrt((digits + GUARD_DIGITS + 30) * mpmath.log(10))

        def raw(t):
            if time.monotonic() > deadline:
                raise _OutOfTime
            if abs(t) > cutoff:
                return mpmath.mpf(0)
            val = fn(sd * t)
            if hasattr(val, "_mpc_"):
                val = val.real
            return val * mpmath.exp(-t * t / 2)

        # natural size of the integrand: the quadrature runs on the integrand
        # divided by it (its error estimate has an absolute floor near the
        # working epsilon), and integrals that vanish by symmetry are judged
        # on this scale
        size = max(abs(raw(mpmath.mpf(t))) for t in (-2, -1, -0.5, 0.5, 1, 2))
        if size == 0:
            size = mpmath.mpf(1)
        try:
            value, err = mpmath.quad(lambda t: raw(t) / size, _points(kinks, sd), error=True, maxdegree=10)
        except _OutOfTime:
            raise GaussianIntegralError(
                f"quadrature of the {what} did not finish within {QUADRATURE_TIME_LIMIT:g} s at {digits} digits "
                "(a strongly oscillating or very steep integrand); ask for fewer digits or a smoother function"
            ) from None
        except (MemoryError, OverflowError) as exc:
            raise GaussianIntegralError(
                f"the {what} overflows under the Gaussian integral ({type(exc).__name__})"
            ) from None
        value *= norm * size
        err *= norm * size
        scale = max(abs(value), norm * size)
        if not mpmath.isfinite(value) or err > scale * mpmath.mpf(10) ** (-digits - 2):
            raise GaussianIntegralError(
                f"quadrature of the {what} did not reach {digits} digits "
                f"(error estimate {mpmath.nstr(err, 3)} for value {mpmath.nstr(value, 10)})"
            )
    return +value
