"""Input validation shared by the API and the CLI.

Messages name the parameter, the value and what is allowed
(scikit-learn style); every error is a ``ValueError`` subclass so the CLI
can turn it into one line and exit code 2.
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Real

import mpmath

__all__ = ["InputError", "check_digits", "to_mpf_exactly", "check_positive", "check_nonnegative", "check_int"]

MAX_DIGITS = 1000


class InputError(ValueError):
    """Invalid user input; the message names the parameter."""


def check_digits(digits) -> int:
    """Validate a requested number of significant digits (1..1000)."""
    if isinstance(digits, bool) or not isinstance(digits, (int,)) and not (
        isinstance(digits, float) and digits.is_integer()
    ):
        raise InputError(f"digits must be an integer between 1 and {MAX_DIGITS}, got {digits!r}")
    digits = int(digits)
    if not 1 <= digits <= MAX_DIGITS:
        raise InputError(f"digits must be an integer between 1 and {MAX_DIGITS}, got {digits}")
    return digits


def _parse(value, name):
    """Turn ``value`` into an mpf at the current precision, exactly where possible."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {value!r}")
    if isinstance(value, mpmath.mpf):
        return +value
    if isinstance(value, int):
        return mpmath.mpf(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{name} must be finite, got {value!r}")
        # the decimal the user typed, not its binary neighbour
        frac = Fraction(repr(float(value)))
        return mpmath.mpf(frac.numerator) / frac.denominator
    if isinstance(value, str):
        text = value.strip()
        try:
            frac = Fraction(text)
        except (ValueError, ZeroDivisionError):
            lowered = text.lower()
            if lowered in ("inf", "+inf", "infinity", "-inf", "nan"):
                raise InputError(f"{name} must be finite, got {value!r}") from None
            raise InputError(f"{name} must be a number, got {value!r}") from None
        return mpmath.mpf(frac.numerator) / frac.denominator
    try:  # SymPy numbers, Fractions, numpy scalars
        if hasattr(value, "p") and hasattr(value, "q"):  # sympy Rational
            return mpmath.mpf(int(value.p)) / int(value.q)
        if isinstance(value, Fraction):
            return mpmath.mpf(value.numerator) / value.denominator
        if hasattr(value, "evalf"):
            return mpmath.mpf(value.evalf(mpmath.mp.dps + 5))
        if isinstance(value, Real):
            return _parse(float(value), name)
    except (TypeError, ValueError):
        pass
    raise InputError(f"{name} must be a real number, got {value!r}")


def to_mpf_exactly(value, name, dps, positive=True):
    """``value`` as an mpf at ``dps`` digits, decimal strings taken exactly.

    Raises :class:`InputError` for non-numbers, non-finite values and, with
    ``positive=True``, values ``<= 0``.
    """
    with mpmath.workdps(dps):
        x = _parse(value, name)
        if not mpmath.isfinite(x):
            raise InputError(f"{name} must be finite, got {value!r}")
        if positive and x <= 0:
            raise InputError(f"{name} must be > 0, got {value!r}")
        return +x


def check_positive(value, name, dps=30):
    """A finite number ``> 0`` as mpf (see :func:`to_mpf_exactly`)."""
    return to_mpf_exactly(value, name, dps, positive=True)


def check_nonnegative(value, name, dps=30):
    """A finite number ``>= 0`` as mpf."""
    x = to_mpf_exactly(value, name, dps, positive=False)
    if x < 0:
        raise InputError(f"{name} must be >= 0, got {value!r}")
    return x


def check_int(value, name, low=None, high=None):
    """An integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InputError(f"{name} must be between {low} and {high}, got {value}")
    return value


def format_number(x, digits):
    """``x`` as a decimal string with ``digits`` significant digits.

    Keeps every digit of an mpf (no rounding through the global precision);
    ``None`` becomes ``None`` and infinities ``"inf"``/``"-inf"``.
    """
    if x is None:
        return None
    if not isinstance(x, mpmath.mpf):
        with mpmath.workdps(max(digits, 17) + 5):
            x = mpmath.mpf(x)
    if mpmath.isinf(x):
        return "inf" if x > 0 else "-inf"
    if mpmath.isnan(x):
        return "nan"
    return mpmath.nstr(x, digits, strip_zeros=False, min_fixed=-4, max_fixed=6)
