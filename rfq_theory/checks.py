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
    "read_decimal",
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

#: Longest number literal accepted (characters).
MAX_LITERAL_LENGTH = 1000

#: ASCII decimal syntax: sign, digits (``_`` allowed between them), fraction, exponent.
_DECIMAL = re.compile(
    r"(?a)(?P<sign>[+-]?)(?P<int>[0-9](?:_?[0-9])*)?(?:\.(?P<frac>[0-9](?:_?[0-9])*)?)?"
    r"(?:[eE](?P<exp>[+-]?[0-9](?:_?[0-9])*))?"
)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text)} characters)"


def read_decimal(text: str, name: str) -> Fraction:
    """The exact rational value of a decimal number written as text.

    The one reader of numbers given as text (command-line options,
    expression literals, activation and quantizer parameters). Accepts only
    ASCII decimal syntax, ``[+-]digits[.digits][e[+-]digits]`` with optional
    ``_`` between digits, at most :data:`MAX_LITERAL_LENGTH` characters, and
    a value that is 0 or has magnitude between ``10**-MAX_DECIMAL_EXPONENT``
    and ``10**MAX_DECIMAL_EXPONENT``. The work is bounded by the length of
    the text: the exponent is checked before any power of ten is built.

    Raises :class:`InputError` naming ``name``, the text and what is allowed.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be given as text, got {type(text).__name__}")
    s = text.strip()
    if len(s) > MAX_LITERAL_LENGTH:
        raise InputError(f"{name}: number literal is longer than {MAX_LITERAL_LENGTH} characters")
    if not s.isascii():
        raise InputError(f"{name} must be written with ASCII digits, got {_shown(s)}")
    m = _DECIMAL.fullmatch(s)
    if not m or (m.group("int") is None and m.group("frac") is None):
        if s.lower().lstrip("+-") in ("inf", "infinity", "nan"):
            raise InputError(f"{name} must be finite, got {_shown(s)}")
        raise InputError(f"{name} must be a decimal number (like 0.5, 1e-3), got {_shown(s)}")
    int_digits = (m.group("int") or "").replace("_", "")
    frac_digits = (m.group("frac") or "").replace("_", "")
    mantissa = int(int_digits + frac_digits)
    exp_text = (m.group("exp") or "0").replace("_", "")
    if len(exp_text.lstrip("+-").lstrip("0")) > 9:
        written, magnitude = 10**10, 10**10  # certainly out of range; never build the integer
    else:
        written = int(exp_text)
        exponent = written - len(frac_digits)
        magnitude = exponent + len(str(mantissa)) - 1 if mantissa else 0
    if abs(magnitude) > MAX_DECIMAL_EXPONENT or abs(written) > MAX_DECIMAL_EXPONENT + MAX_LITERAL_LENGTH:
        raise InputError(
            f"{name} = {_shown(s)} is out of range: numbers must be 0 or have magnitude between "
            f"1e-{MAX_DECIMAL_EXPONENT} and 1e{MAX_DECIMAL_EXPONENT}"
        )
    if mantissa == 0:
        return Fraction(0)
    value = Fraction(mantissa * 10**exponent) if exponent >= 0 else Fraction(mantissa, 10**-exponent)
    return -value if m.group("sign") == "-" else value


def check_literal_magnitude(text: str, name: str) -> None:
    """Refuse text that :func:`read_decimal` refuses (kept for callers that only check)."""
    read_decimal(text, name)


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
        # the float's exact binary value (text is the way to give an exact decimal)
        return +mpmath.mpf(value)
    if isinstance(value, str):
        frac = read_decimal(value, name)
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
        x = _scalar_from_text(x, name, types, wants_float)
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


def _scalar_from_text(text, name, types, wants_float):
    """``text`` read by :func:`read_decimal` as an ``int`` or ``float``."""
    s = text.strip()
    if (
        s.isascii()
        and len(s) <= MAX_LITERAL_LENGTH
        and not _DECIMAL.fullmatch(s)
        and s.lower().lstrip("+-")
        not in (
            "inf",
            "infinity",
            "nan",
        )
    ):
        raise InputError(f"{name} must be {_type_words(types)}, got {_shown(s)}")
    frac = read_decimal(s, name)
    if not wants_float:
        if frac.denominator != 1:
            raise InputError(f"{name} must be {_type_words(types)}, got {_shown(text.strip())}")
        return int(frac)
    try:
        as_float = float(frac)
    except OverflowError:
        raise InputError(f"{name} = {_shown(text.strip())} is beyond the floating-point range") from None
    if as_float == 0 and frac != 0:
        raise InputError(f"{name} = {_shown(text.strip())} is below the floating-point range")
    return as_float


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
