"""One vocabulary for the results: the :class:`Diagnostics` record and number conversion.

Every result of the package (a prediction, a theorem comparison, an optimal
ridge, a batch of lanes, a phase map, a curve) carries the same record of
how it was obtained, :class:`Diagnostics`, read as ``result.diagnostics``.
The numbers of a result are converted by three generic functions that walk
the dataclass fields, so that no result keeps a hand-written list of its
fields:

- :func:`freeze_numbers`: every mpf field frozen at ``digits`` significant digits;
- :func:`float_numbers`: every number a Python ``float`` (the float path's one type);
- :func:`to_jsonable`: a JSON-ready dict, numbers as decimal strings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .precision import freeze, is_mpf

__all__ = ["Diagnostics", "freeze_numbers", "float_numbers", "to_jsonable", "is_number"]

#: Values of :attr:`Diagnostics.status`.
STATUSES = ("ok", "fallback", "failed", "at_bound")


@dataclass(frozen=True)
class Diagnostics:
    """How a result was obtained (the same fields for every result type).

    Attributes
    ----------
    status:
        ``"ok"``; ``"fallback"`` (re-solved at higher precision);
        ``"at_bound"`` (an optimum on the edge of its search interval);
        ``"failed"`` (the solver did not converge: the numbers are NaN).
    converged:
        False when the solver did not converge (then ``message`` says why).
    message:
        One line for a person ("" when there is nothing to say).
    iterations, function_calls:
        Outer iterations and solves (or walks) spent.
    residual:
        Largest relative residual of the equations at the solution.
    working_digits:
        Decimal digits the solution was computed with (16 for doubles).
    condition:
        Rounding amplification at the solution (1 when not measured).
    fallback:
        The precision tier that produced the numbers: ``"float"``,
        ``"double-double"`` or ``"mpmath"``.
    """

    status: str = "ok"
    converged: bool = True
    message: str = ""
    iterations: int = 0
    function_calls: int = 0
    residual: float = 0.0
    working_digits: int = 16
    condition: float = 1.0
    fallback: str = "float"

    @classmethod
    def failed(cls, message: str, **kw) -> Diagnostics:
        """The record of a point whose solve did not converge."""
        return cls(status="failed", converged=False, message=message, residual=math.nan, **kw)

    def as_dict(self) -> dict:
        """JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["residual"] = _json_float(self.residual)
        out["condition"] = _json_float(self.condition)
        return out


def _json_float(x):
    x = float(x)
    return repr(x) if not math.isfinite(x) else x


def is_number(x) -> bool:
    """A real number (float, int, NumPy scalar or mpf), not a bool."""
    return not isinstance(x, bool) and (isinstance(x, (float, int, np.floating, np.integer)) or is_mpf(x))


def _map_numbers(value, fn, skip=()):
    """``value`` with ``fn`` applied to every number inside tuples, lists and dicts (dataclasses kept)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if is_number(value):
        return fn(value)
    if isinstance(value, tuple):
        return tuple(_map_numbers(v, fn) for v in value)
    if isinstance(value, list):
        return [_map_numbers(v, fn) for v in value]
    return value


def _replace_numbers(obj, fn, skip: tuple = ()):
    changes = {}
    for f in dataclasses.fields(obj):
        if f.name in skip or not f.init:
            continue
        old = getattr(obj, f.name)
        new = _map_numbers(old, fn)
        if new is not old:
            changes[f.name] = new
    return dataclasses.replace(obj, **changes) if changes else obj


#: fields that are counts or settings, never converted
_KEEP = ("digits", "iterations", "function_calls", "working_digits", "condition")


def freeze_numbers(obj, digits: int, keep: tuple = ()) -> Any:
    """``obj`` (a dataclass) with every number field frozen at ``digits`` significant digits."""
    return _replace_numbers(obj, lambda x: freeze(x, digits), skip=_KEEP + tuple(keep))


def float_numbers(obj, keep: tuple = ()) -> Any:
    """``obj`` (a dataclass) with every number field a Python ``float`` (one float type on the float path)."""
    return _replace_numbers(obj, float, skip=_KEEP + tuple(keep))


def to_jsonable(obj, digits: int, skip: tuple = (), _top: bool = True) -> Any:
    """A JSON-ready form of ``obj``: dataclasses as dicts, numbers as strings of ``digits`` significant digits.

    Dataclasses with an ``as_dict(digits)`` method other than the one being
    built (nested layers, for instance) use it; :class:`Diagnostics` becomes
    its own dict.
    """
    from .checks import format_number

    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if is_number(obj):
        return format_number(obj, digits)
    if isinstance(obj, Diagnostics):
        return obj.as_dict()
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v, digits, _top=False) for v in obj.tolist()]
    if isinstance(obj, (tuple, list)):
        return [to_jsonable(v, digits, _top=False) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, digits, _top=False) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and (_top or not hasattr(obj, "as_dict")):
        out = {}
        for f in dataclasses.fields(obj):
            if f.name in skip or not f.repr:
                continue
            out[f.name] = to_jsonable(getattr(obj, f.name), digits, _top=False)
        diag = getattr(obj, "diagnostics", None)
        if isinstance(diag, Diagnostics) and "diagnostics" not in out:
            out["diagnostics"] = diag.as_dict()
        return out
    if hasattr(obj, "as_dict"):
        return obj.as_dict(digits)
    return str(obj)
