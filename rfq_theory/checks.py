"""Input validation shared by the API and the CLI.

Messages name the parameter, the value and what is allowed
(scikit-learn style); every error is a ``ValueError`` subclass so the CLI
can turn it into one line and exit code 2.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from numbers import Real

from .precision import SYMPY_LOCK, is_mpf
from .precision import mp as mpmath

__all__ = [
    "InputError",
    "check_digits",
    "to_mpf_exactly",
    "check_positive",
    "check_nonnegative",
    "check_scalar",
    "format_number",
]

#: Most significant digits a prediction may ask for (a two-layer tanh model
#: takes about 40 s at 200 digits on one core; the cost grows steeply).
MAX_DIGITS = 250
#: Most working digits of the coefficient functions (requested digits plus guard digits).
MAX_WORKING_DIGITS = 2000

#: Decimal exponents a number given as text may have: ``|x|`` must be 0 or
#: lie between ``10**-MAX_DECIMAL_EXPONENT`` and ``10**MAX_DECIMAL_EXPONENT``
#: (larger literals would become exact rationals of millions of digits).
MAX_DECIMAL_EXPONENT = 1000

_DECIMAL = re.compile(r"^[+-]?(?P<int>[0-9_]*)(?:\.(?P<frac>[0-9_]*))?(?:[eE](?P<exp>[+-]?[0-9_]+))?$")


def check_literal_magnitude(text: str, name: str) -> None:
    """Refuse a decimal literal whose exponent is beyond :data:`MAX_DECIMAL_EXPONENT` (or whose text is over 1000 characters).

    Runs before ``Fraction(text)`` so that ``"1e999999999"`` fails at once
    instead of building a billion-digit integer.
    """
    text = text.strip()
    if len(text) > 1000:
        raise InputError(f"{name}: number literal is longer than 1000 characters")
    m = _DECIMAL.match(text)
    if not m or not m.group("exp"):
        return
    digits = (m.group("int") or "").replace("_", "").lstrip("0")
    frac = (m.group("frac") or "").replace("_", "")
    if not digits and not frac.strip("0"):
        return  # zero
    exp = int(m.group("exp").replace("_", "")) if len(m.group("exp")) < 12 else 10**12
    if digits:
        magnitude = exp + len(digits) - 1
    else:
        magnitude = exp - (len(frac) - len(frac.lstrip("0"))) - 1
    if abs(magnitude) > MAX_DECIMAL_EXPONENT:
        raise InputError(
            f"{name} = {text[:40]!r} is out of range: numbers must be 0 or have magnitude between "
            f"1e-{MAX_DECIMAL_EXPONENT} and 1e{MAX_DECIMAL_EXPONENT}"
        )


class InputError(ValueError):
    """Invalid user input; the message names the parameter."""


def check_digits(digits, maximum=None) -> int:
    """Validate a requested number of significant digits (1..``maximum``).

    ``maximum`` defaults to :data:`MAX_DIGITS` (the limit of
    :func:`rfq_theory.solver.predict` and the sweeps); coefficient
    functions allow up to :data:`MAX_WORKING_DIGITS` because the solver
    calls them with its guard digits added.
    """
    maximum = MAX_DIGITS if maximum is None else maximum
    if (
        isinstance(digits, bool)
        or not isinstance(digits, (int,))
        and not (isinstance(digits, float) and digits.is_integer())
    ):
        raise TypeError(f"digits must be an integer between 1 and {maximum}, got {digits!r}")
    digits = int(digits)
    if not 1 <= digits <= maximum:
        raise InputError(f"digits must be an integer between 1 and {maximum}, got {digits}")
    return digits


def _parse(value, name):
    """Turn ``value`` into an mpf at the current precision, exactly where possible."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number, got {value!r}")
    if is_mpf(value):
        return +mpmath.mpf(value)
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
        check_literal_magnitude(text, name)
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
            with SYMPY_LOCK:
                approx = value.evalf(mpmath.mp.dps + 5)
            return mpmath.mpf(approx)
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


def check_scalar(x, name, target_type, *, min_val=None, max_val=None, include_boundaries="both"):
    """Validate a plain Python scalar (in the manner of scikit-learn's ``check_scalar``).

    Parameters
    ----------
    x:
        The value. A string is read as a number of ``target_type`` first
        (command-line options arrive as text); ``bool`` is never a number.
    name:
        The parameter's name, used in the message.
    target_type:
        ``int``, ``float`` or a tuple of types (``int`` values are accepted
        where ``float`` is asked for).
    min_val, max_val, include_boundaries:
        Allowed range; ``include_boundaries`` is ``"both"``, ``"left"``,
        ``"right"`` or ``"neither"``.

    Returns the value converted to ``target_type``. Raises ``TypeError`` for
    a value of the wrong type and ``ValueError`` (:class:`InputError`) for a
    value outside the range or not finite; both messages name the parameter,
    the value and what is allowed.
    """
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    wants_float = float in types
    if isinstance(x, str):
        text = x.strip()
        try:
            x = int(text) if not wants_float else float(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                raise InputError(f"{name} must be {_type_words(types)}, got {text!r}") from None
            if not wants_float and math.isfinite(as_float) and as_float.is_integer() and abs(as_float) < 2**63:
                x = int(as_float)
            else:
                raise InputError(f"{name} must be {_type_words(types)}, got {text!r}") from None
    if isinstance(x, bool) or not isinstance(x, types if not wants_float else types + (int,)):
        if not isinstance(x, bool) and isinstance(x, Real) and not wants_float and float(x).is_integer():
            x = int(x)
        elif not isinstance(x, bool) and wants_float and isinstance(x, Real):
            x = float(x)
        else:
            raise TypeError(f"{name} must be {_type_words(types)}, got {x!r} of type {type(x).__name__}")
    if wants_float and not math.isfinite(float(x)):
        raise InputError(f"{name} must be a finite number, got {x!r}")
    left = include_boundaries in ("both", "left")
    right = include_boundaries in ("both", "right")
    if include_boundaries not in ("both", "left", "right", "neither"):
        raise ValueError(f"include_boundaries must be 'both', 'left', 'right' or 'neither', got {include_boundaries!r}")
    low_bad = min_val is not None and (x < min_val if left else x <= min_val)
    high_bad = max_val is not None and (x > max_val if right else x >= max_val)
    if low_bad or high_bad:
        lo = "" if min_val is None else f"{min_val} {'<=' if left else '<'} "
        hi = "" if max_val is None else f" {'<=' if right else '<'} {max_val}"
        raise InputError(f"{name} must satisfy {lo}{name}{hi}, got {x!r}")
    return x


def _type_words(types):
    words = {int: "an integer", float: "a number"}
    return " or ".join(words.get(t, t.__name__) for t in types)


def format_number(x, digits):
    """``x`` as a decimal string with ``digits`` significant digits.

    Keeps every digit of an mpf (no rounding through the global precision);
    ``None`` becomes ``None`` and infinities ``"inf"``/``"-inf"``.
    """
    if x is None:
        return None
    if not is_mpf(x):
        with mpmath.workdps(max(digits, 17) + 5):
            x = mpmath.mpf(x)
    if mpmath.isinf(x):
        return "inf" if x > 0 else "-inf"
    if mpmath.isnan(x):
        return "nan"
    if x == 0:  # printed like any other number of ``digits`` digits (nstr gives "0.0")
        return "0" if digits <= 1 else "0." + "0" * (digits - 1)
    return mpmath.nstr(x, digits, strip_zeros=False, min_fixed=-4, max_fixed=6)
