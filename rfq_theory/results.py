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

Every result prints short (:func:`result_repr`: the name, the headline
numbers with the digits they were computed to, arrays summarised as shape,
min and max, and the diagnostics status), and a curve is a :class:`Curve`:
the per-point results as a sequence plus one NumPy array per quantity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .precision import freeze, is_mpf

__all__ = ["Diagnostics", "Curve", "freeze_numbers", "float_numbers", "to_jsonable", "is_number", "result_repr"]

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

    @classmethod
    def of_lanes(cls, n_failed: int, n_fallback: int, messages) -> Diagnostics:
        """The record of a set of lanes (a map, a curve): failed when any lane did not converge,
        fallback when any was re-solved at higher precision."""
        return cls(
            status="failed" if n_failed else "fallback" if n_fallback else "ok",
            converged=n_failed == 0,
            message="; ".join(messages),
            fallback="mpmath" if n_fallback else "float",
        )

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


# --------------------------------------------------------------------------
# short representation
# --------------------------------------------------------------------------

#: longest text of one field in :func:`result_repr`
_FIELD_CHARS = 90
#: most numbers of a tuple shown one by one (longer ones are summarised)
_TUPLE_ITEMS = 4


def _number_text(x, digits: int | None) -> str:
    """A number with every digit it carries: an mpf at its precision (or ``digits``), a float round-trip."""
    if is_mpf(x):
        from .checks import format_number

        ctx_dps = getattr(getattr(x, "context", None), "dps", None)
        return format_number(x, digits or ctx_dps or 15)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return repr(float(x))


def _summary(values) -> str:
    """``shape=(..), min=.., max=..`` of an array of numbers (NaN ignored; counts of NaN shown)."""
    arr = np.asarray(values)
    head = f"array(shape={arr.shape}"
    if arr.size == 0:
        return head + ")"
    if arr.dtype.kind == "b":
        return head + f", true={int(np.count_nonzero(arr))})"
    if arr.dtype.kind not in "fiu":
        try:
            arr = np.asarray([float(v) if v is not None else math.nan for v in arr.ravel()], dtype=float)
        except (TypeError, ValueError):
            return head + f", dtype={arr.dtype})"
    arr = arr.astype(float, copy=False)
    finite = arr[~np.isnan(arr)]
    out = head
    if finite.size:
        out += f", min={finite.min():.6g}, max={finite.max():.6g}"
    if finite.size < arr.size:
        out += f", nan={arr.size - finite.size}"
    return out + ")"


def _field_text(value, digits: int | None) -> str:
    if value is None or isinstance(value, bool):
        return repr(value)
    if is_number(value):
        return _number_text(value, digits)
    if isinstance(value, str):
        return repr(value if len(value) <= _FIELD_CHARS else value[: _FIELD_CHARS - 3] + "...")
    if isinstance(value, Diagnostics):
        return value.status
    if isinstance(value, np.ndarray):
        return _summary(value)
    if isinstance(value, (tuple, list)):
        if all(v is None or is_number(v) for v in value):
            if len(value) <= _TUPLE_ITEMS:
                inner = ", ".join(_field_text(v, digits) for v in value)
                return f"({inner}{',' if len(value) == 1 else ''})"
            return _summary([math.nan if v is None else float(v) for v in value])
        kinds = sorted({type(v).__name__ for v in value})
        return f"<{len(value)} x {'/'.join(kinds)}>" if value else "()"
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:6])
        return "{" + keys + (", ..." if len(value) > 6 else "") + "}"
    if dataclasses.is_dataclass(value):
        headline = getattr(value, "test_error", None)
        if is_number(headline):
            return f"<{type(value).__name__} test_error={_number_text(headline, getattr(value, 'digits', None) or digits)}>"
        text = repr(value)
        return text if len(text) <= _FIELD_CHARS else f"<{type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= _FIELD_CHARS else f"<{type(value).__name__}>"


def result_repr(obj) -> str:
    """A short, multi-line representation of a result (the ``repr`` and ``str`` of every result class).

    The class name, then one line per headline field: the fields named in
    the class attribute ``_headline`` (every dataclass field shown by
    ``repr`` when there is none), numbers with every digit they carry (an
    mpf frozen at 30 digits prints 30), arrays and long tuples as
    ``shape``/``min``/``max``, nested results as their type, then the
    diagnostics status and message.
    """
    names = getattr(type(obj), "_headline", None)
    if names is None:
        names = [f.name for f in dataclasses.fields(obj) if f.repr and f.name != "diagnostics"]
    digits = getattr(obj, "digits", None)
    digits = digits if isinstance(digits, int) and not isinstance(digits, bool) else None
    lines = [type(obj).__name__]
    width = max([len(n) for n in names] + [len("diagnostics")])
    for name in names:
        try:
            value = getattr(obj, name)
        except AttributeError:
            continue
        lines.append(f"  {name:<{width}} = {_field_text(value, digits)}")
    try:
        diag = getattr(obj, "diagnostics", None)
    except Exception:  # a diagnostics that cannot be built does not stop the repr
        diag = None
    if isinstance(diag, Diagnostics):
        status = f"{diag.status} ({diag.fallback})"
        if diag.message:
            msg = diag.message if len(diag.message) <= _FIELD_CHARS else diag.message[: _FIELD_CHARS - 3] + "..."
            status += f": {msg}"
        lines.append(f"  {'diagnostics':<{width}} = {status}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------


def _column(points: Sequence, name: str) -> np.ndarray:
    """``getattr(p, name)`` of every point as a float array (``None`` becomes NaN)."""
    out = np.empty(len(points), dtype=float)
    for i, p in enumerate(points):
        v = getattr(p, name, None)
        out[i] = math.nan if v is None else float(v)
    return out


class Curve(Sequence):
    """A curve: the per-point results over one axis, and one NumPy array per quantity.

    A :class:`Curve` is a sequence of the per-point results (``curve[i]``,
    ``len(curve)``, ``for p in curve`` work as on a list), and reads each
    quantity over the whole axis as a float array: ``curve.test_error``,
    ``curve.train_error``, ``curve.effective_ridge`` (``kappa_L``),
    ``curve.effective_ridges`` (shape ``(len, L+1)``), ``curve.kappa0``,
    ``curve.df1``, ``curve.df2``, ... (any number field of the points);
    ``curve.converged`` (bool) and ``curve.status`` (the diagnostics status)
    per point.  Failed points are NaN.

    Attributes
    ----------
    axis:
        The axis varied (``"samples"``, ``"width"``, ``"widths"`` or ``"ridge"``).
    values:
        The grid as given (float array): absolute values, or ratios to the
        input dimension when the curve was asked with ``ratio=True``.
    applied:
        The value each point was computed at (``n``, ``k_L``, the widths
        factor or ``lambda``), equal to ``values`` unless ``ratio=True``.
    """

    def __init__(self, axis: str, values, points: Sequence, applied=None, ratio: bool = False):
        self.axis = axis
        self.ratio = bool(ratio)
        self.values = np.asarray([float(v) for v in values], dtype=float)
        self.applied = self.values if applied is None else np.asarray([float(v) for v in applied], dtype=float)
        self.points: tuple = tuple(points)

    # sequence of the per-point results (what the list used to be)
    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self.points[index])
        return self.points[index]

    def __iter__(self) -> Iterator:
        return iter(self.points)

    def __eq__(self, other) -> bool:
        if isinstance(other, Curve):
            return self.axis == other.axis and list(self.points) == list(other.points)
        if isinstance(other, (list, tuple)):
            return list(self.points) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    # columns
    def column(self, name: str) -> np.ndarray:
        """The number field ``name`` of every point as a float array (NaN where absent)."""
        return _column(self.points, name)

    @property
    def test_error(self) -> np.ndarray:
        """Test error per point."""
        return self.column("test_error")

    @property
    def train_error(self) -> np.ndarray:
        """Train error per point."""
        return self.column("train_error")

    @property
    def kappa0(self) -> np.ndarray:
        """``kappa_0`` per point."""
        return self.column("kappa0")

    @property
    def effective_ridge(self) -> np.ndarray:
        """``kappa_L`` per point."""
        return self.column("effective_ridge")

    @property
    def effective_ridges(self) -> np.ndarray:
        """``(kappa_0, ..., kappa_L)`` per point, shape ``(len, L+1)`` (NaN for a failed point)."""
        rows = [tuple(getattr(p, "effective_ridges", ()) or ()) for p in self.points]
        width = max((len(r) for r in rows), default=0)
        out = np.full((len(rows), width), math.nan)
        for i, r in enumerate(rows):
            for j, v in enumerate(r):
                out[i, j] = math.nan if v is None else float(v)
        return out

    @property
    def converged(self) -> np.ndarray:
        """True where the point's solve converged."""
        return np.asarray([bool(p.diagnostics.converged) for p in self.points], dtype=bool)

    @property
    def status(self) -> np.ndarray:
        """The diagnostics status of each point (``"ok"``, ``"fallback"``, ``"failed"``)."""
        return np.asarray([p.diagnostics.status for p in self.points], dtype=object)

    @property
    def diagnostics(self) -> Diagnostics:
        """The curve's record: failed when any point failed, fallback when any was re-solved."""
        ds = [p.diagnostics for p in self.points]
        n_failed = sum(not d.converged for d in ds)
        status = "failed" if n_failed else "fallback" if any(d.status == "fallback" for d in ds) else "ok"
        message = f"{n_failed} of {len(ds)} point(s) did not converge; they are NaN" if n_failed else ""
        res = [float(d.residual) for d in ds if math.isfinite(float(d.residual))]
        return Diagnostics(
            status=status,
            converged=n_failed == 0,
            message=message,
            iterations=sum(d.iterations for d in ds),
            function_calls=sum(d.function_calls for d in ds),
            residual=max(res) if res else 0.0,
            working_digits=min((d.working_digits for d in ds), default=16),
            fallback="mpmath" if any(d.fallback == "mpmath" for d in ds) else "float",
        )

    def _number_fields(self) -> list[str]:
        if not self.points:
            return []
        first = self.points[0]
        if not dataclasses.is_dataclass(first):
            return []
        out = []
        for f in dataclasses.fields(first):
            if f.name in ("digits",) + _KEEP or f.name == "effective_ridges":
                continue
            if any(is_number(getattr(p, f.name, None)) for p in self.points):
                out.append(f.name)
        return out

    def __getattr__(self, name: str) -> np.ndarray:
        # any other number field of the points as a column (``curve.m`` of a convex-loss curve)
        if name.startswith("_") or name in ("points", "axis", "values", "applied", "ratio"):
            raise AttributeError(name)
        if self.points and dataclasses.is_dataclass(self.points[0]):
            if name in {f.name for f in dataclasses.fields(self.points[0])}:
                return self.column(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute or point field {name!r}")

    def as_dict(self) -> dict[str, np.ndarray]:
        """The columns: the axis values, every number field, ``kappa_l`` per layer, ``converged`` and ``status``."""
        out: dict[str, np.ndarray] = {self.axis: self.values}
        if self.ratio:
            out[f"{self.axis}_applied"] = self.applied
        for name in self._number_fields():
            out[name] = self.column(name)
        ks = self.effective_ridges
        for j in range(ks.shape[1]):
            out[f"kappa_{j}"] = ks[:, j]
        if self.points and hasattr(self.points[0], "regime"):
            out["regime"] = np.asarray([p.regime for p in self.points], dtype=object)
        out["converged"] = self.converged
        out["status"] = self.status
        return out

    def to_pandas(self):
        """A ``pandas.DataFrame`` with one row per point and one column per quantity (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Curve.to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame(self.as_dict())

    def __repr__(self) -> str:
        kind = type(self.points[0]).__name__ if self.points else "point"
        lines = [f"Curve over {self.axis!r}{' (ratio to d)' if self.ratio else ''}: {len(self)} x {kind}"]
        lines.append(f"  {self.axis:<11} = {_summary(self.values)}")
        if self.points:
            lines.append(f"  {'test_error':<11} = {_summary(self.test_error)}")
            lines.append(f"  {'train_error':<11} = {_summary(self.train_error)}")
        d = self.diagnostics
        lines.append(f"  {'diagnostics':<11} = {d.status}{': ' + d.message if d.message else ''}")
        return "\n".join(lines)

    __str__ = __repr__
