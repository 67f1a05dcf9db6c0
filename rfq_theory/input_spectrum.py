"""Structured inputs: the covariance spectrum of ``x`` and the teacher's profile (``docs/theory.md``, section 8).

Inputs are ``x ~ N(0, Sigma)`` with eigenvalues ``lambda_1..lambda_d`` of
``Sigma``; the teacher is ``g = beta . x / sqrt(d)`` with squared
coefficients ``beta_i^2`` in the eigenbasis of ``Sigma``, rescaled so that
``Var g = (1/d) sum_i beta_i^2 lambda_i = 1``.  With the teacher weights
``t_i = beta_i^2 / sum_j beta_j^2 lambda_j`` (so ``sum_i t_i lambda_i = 1``)
the chain starts from ``Omega_0 = Phi_0 = Sigma``::

    df1_0(k) = sum_i lambda_i / (lambda_i + k),
    s_0(k)   = sum_i t_i lambda_i^2 / (lambda_i + k),

and the first layer sees the pre-activation variance ``q_0 = tr Sigma / d``
(the mean eigenvalue).  The identity (``lambda_i = 1``) gives back
``df1_0 = d / (1 + k)`` and ``s_0 = 1 / (1 + k)`` for every teacher.

Families (:func:`input_spectrum`, :func:`teacher_profile`):

- spectra: ``identity``; ``power:a`` (``lambda_i`` proportional to
  ``i^-a``, scaled to mean 1); ``spiked:r:v`` (``r`` eigenvalues ``v``, the
  other ``d - r`` equal and the mean 1); ``file:PATH`` (``.npy`` or text,
  ``d`` eigenvalues used as given); or an array;
- teachers: ``flat`` (``beta_i^2 = 1``); ``power:b`` (``beta_i^2``
  proportional to ``r_i^-b`` with ``r_i`` the rank of ``lambda_i`` in
  decreasing order); ``file:PATH`` or an array (``d`` values paired with
  the eigenvalues in their listed order).

:class:`BaseMeasure` evaluates the two base functions (and their
derivatives) for floats, mpmath numbers, NumPy lanes and complex numbers.
:func:`variance_spread` measures how far the first layer is from the
concentrated regime that the equations assume.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from .caches import register_cache
from .checks import InputError, read_decimal
from .precision import mp as mpmath

__all__ = [
    "InputSpectrum",
    "TeacherProfile",
    "BaseMeasure",
    "input_spectrum",
    "teacher_profile",
    "base_measure",
    "input_variance",
    "variance_spread",
    "HEAVY_SPREAD",
    "MAX_INPUT_DIM",
]

#: largest number of eigenvalues accepted (a file or ``d`` of a family)
MAX_INPUT_DIM = 10**7
#: largest exponent of the ``power`` families
MAX_EXPONENT = 20
#: above this spread of the first layer's pre-activation variances (Gaussian weights)
#: a prediction carries a note that the first layer is outside the concentrated regime
HEAVY_SPREAD = 0.25


def _exponent(text: str, name: str) -> Fraction:
    value = read_decimal(text, name)
    if not 0 <= value <= MAX_EXPONENT:
        raise InputError(f"{name}: the exponent must lie in [0, {MAX_EXPONENT}], got {text.strip()!r}")
    return value


def _read_values(path: str, name: str) -> tuple[float, ...]:
    """``d`` numbers from a ``.npy`` file or a text file (separated by spaces, commas or newlines)."""
    if not path:
        raise InputError(f"{name}: file: needs a path, e.g. file:eigenvalues.npy")
    if not os.path.isfile(path):
        raise InputError(f"{name}: no such file: {path!r}")
    try:
        if path.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        else:
            with open(path, encoding="utf-8") as fh:
                text = fh.read(64 * MAX_INPUT_DIM)
            arr = np.array([float(t) for t in text.replace(",", " ").split()], dtype=float)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: cannot read numbers from {path!r}: {exc}") from None
    return _check_values(arr, name)


def _check_values(values: Any, name: str) -> tuple[float, ...]:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 1-d array of numbers, got {type(values).__name__}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a non-empty 1-d array of numbers, got shape {arr.shape}")
    if arr.size > MAX_INPUT_DIM:
        raise InputError(f"{name}: at most {MAX_INPUT_DIM} values are accepted, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must hold finite numbers (found NaN or infinity)")
    if np.any(arr < 0):
        raise InputError(f"{name} must hold numbers >= 0, found {float(arr.min())!r}")
    if not np.any(arr > 0):
        raise InputError(f"{name} must hold at least one number > 0")
    return tuple(float(v) for v in arr)


def _integer_dim(d, name="input_dim") -> int:
    try:
        value = float(d)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number for this input spectrum, got {d!r}") from None
    if not (value >= 1 and value == math.floor(value) and value <= MAX_INPUT_DIM):
        raise InputError(
            f"{name} must be a whole number from 1 to {MAX_INPUT_DIM} when the input spectrum is a family "
            f"(one eigenvalue per input dimension), got {d!r}"
        )
    return int(value)


@dataclass(frozen=True)
class InputSpectrum:
    """The eigenvalues of the input covariance ``Sigma`` (a family or given values).

    ``kind`` is ``"identity"``, ``"power"`` (``params = (a,)``),
    ``"spiked"`` (``params = (r, v)``) or ``"values"`` (``values``: the
    eigenvalues as given); ``spec`` is the text shown (``"power:0.5"``).
    """

    kind: str
    params: tuple = ()
    values: tuple | None = None
    spec: str = "identity"

    def __repr__(self) -> str:
        return f"InputSpectrum({self.spec!r})"

    @property
    def is_identity(self) -> bool:
        """``Sigma = I`` (``identity``, ``power:0`` or ``spiked`` with ``v = 1``)."""
        if self.kind == "identity":
            return True
        if self.kind == "power":
            return self.params[0] == 0
        if self.kind == "spiked":
            return self.params[1] == 1
        return self.values is not None and all(v == 1.0 for v in self.values)

    def dimension(self, input_dim) -> int:
        """The number ``d`` of eigenvalues for a model with ``input_dim`` (checked against given values)."""
        if self.kind == "values":
            assert self.values is not None
            d = len(self.values)
            if float(input_dim) != d:
                raise InputError(
                    f"the input spectrum has {d} eigenvalues but input_dim is {input_dim}: they must agree"
                )
            return d
        return _integer_dim(input_dim)

    def eigenvalues(self, d: int, dps: int | None = None) -> list:
        """``lambda_1..lambda_d``: floats (``dps=None``) or mpf at ``dps`` digits."""
        if dps is None:
            return list(_float_eigenvalues(self, d))
        return list(_mp_eigenvalues(self, d, dps))


def _float_eigenvalues(spec: InputSpectrum, d: int) -> np.ndarray:
    if spec.kind == "values":
        return np.asarray(spec.values, dtype=float)
    if spec.kind == "identity":
        return np.ones(d)
    if spec.kind == "power":
        a = float(spec.params[0])
        raw = np.arange(1, d + 1, dtype=float) ** (-a)
        return raw * (d / math.fsum(raw))
    r, v = spec.params
    rest = (d - r * float(v)) / (d - r) if d > r else 1.0
    return np.concatenate([np.full(r, float(v)), np.full(d - r, rest)])


def _mp_eigenvalues(spec: InputSpectrum, d: int, dps: int) -> list:
    with mpmath.workdps(dps):
        if spec.kind == "values":
            assert spec.values is not None
            return [mpmath.mpf(v) for v in spec.values]
        if spec.kind == "identity":
            return [mpmath.mpf(1)] * d
        if spec.kind == "power":
            a = spec.params[0]
            a_mp = mpmath.mpf(a.numerator) / a.denominator
            raw = [mpmath.power(i, -a_mp) for i in range(1, d + 1)]
            scale = d / mpmath.fsum(raw)
            return [x * scale for x in raw]
        r, v = spec.params
        v_mp = mpmath.mpf(v.numerator) / v.denominator
        rest = (d - r * v_mp) / (d - r) if d > r else mpmath.mpf(1)
        return [v_mp] * r + [rest] * (d - r)


def _check_spiked(spec: InputSpectrum, d: int) -> None:
    r, v = spec.params
    if r > d:
        raise InputError(f"input spectrum {spec.spec}: {r} spikes but only d = {d} dimensions")
    if r < d and r * v >= d:
        raise InputError(
            f"input spectrum {spec.spec}: r v = {float(r * v):g} must be below d = {d} "
            "(the other eigenvalues fill the mean up to 1)"
        )


def _parse_common(spec: Any, cls: type, default: str, name: str):
    """An object of ``cls`` for ``spec`` given as such, ``None`` or an array; else ``(text, family, rest)`` of a string."""
    if isinstance(spec, cls):
        return spec
    if spec is None:
        return cls(default)
    if not isinstance(spec, str):
        values = _check_values(spec, name)
        return cls("values", values=values, spec=f"values(d={len(values)})")
    text = spec.strip()
    family, _, rest = text.partition(":")
    return text, family.strip().lower(), rest


def input_spectrum(spec: Any = "identity") -> InputSpectrum:
    """Parse an input spectrum: a spec string (module docstring), an array of eigenvalues or an :class:`InputSpectrum`.

    >>> input_spectrum("power:0.5")
    InputSpectrum('power:0.5')
    """
    parsed = _parse_common(spec, InputSpectrum, "identity", "input_spectrum")
    if not isinstance(parsed, tuple):
        return parsed
    text, family, rest = parsed
    allowed = "identity, power:a, spiked:r:v, file:PATH or an array of eigenvalues"
    if family == "identity" and not rest:
        return InputSpectrum("identity")
    if family == "power" and rest:
        a = _exponent(rest, "input_spectrum power:a")
        return InputSpectrum("power", (a,), spec=f"power:{rest.strip()}")
    if family == "spiked" and rest:
        parts = rest.split(":")
        if len(parts) != 2:
            raise InputError(f"input_spectrum spiked:r:v needs two numbers, got {text!r}")
        r = read_decimal(parts[0], "input_spectrum spiked:r")
        v = read_decimal(parts[1], "input_spectrum spiked:v")
        if r.denominator != 1 or not 1 <= r <= MAX_INPUT_DIM:
            raise InputError(f"input_spectrum spiked:r:v: r must be a whole number >= 1, got {parts[0].strip()!r}")
        if not 0 < v <= 10**12:
            raise InputError(f"input_spectrum spiked:r:v: v must lie in (0, 1e12], got {parts[1].strip()!r}")
        return InputSpectrum("spiked", (int(r), v), spec=f"spiked:{parts[0].strip()}:{parts[1].strip()}")
    if family == "file":
        values = _read_values(rest.strip(), "input_spectrum")
        return InputSpectrum("values", values=values, spec=f"file:{rest.strip()}")
    raise InputError(f"input_spectrum must be {allowed}; got {text!r}")


@dataclass(frozen=True)
class TeacherProfile:
    """The squared teacher coefficients ``beta_i^2`` in the eigenbasis of ``Sigma`` (before rescaling).

    ``kind`` is ``"flat"``, ``"power"`` (``params = (b,)``) or ``"values"``.
    """

    kind: str
    params: tuple = ()
    values: tuple | None = None
    spec: str = "flat"

    def __repr__(self) -> str:
        return f"TeacherProfile({self.spec!r})"

    def squared_coefficients(self, eigenvalues: np.ndarray) -> np.ndarray:
        """``beta_i^2`` (floats, unnormalized) paired with ``eigenvalues`` in their order."""
        d = len(eigenvalues)
        if self.kind == "flat":
            return np.ones(d)
        if self.kind == "values":
            assert self.values is not None
            if len(self.values) != d:
                raise InputError(f"the teacher has {len(self.values)} values but the input spectrum has {d}")
            return np.asarray(self.values, dtype=float)
        return _power_ranks(eigenvalues) ** (-float(self.params[0]))

    def squared_coefficients_mp(self, eigenvalues_float: np.ndarray, dps: int) -> list:
        """:meth:`squared_coefficients` as mpf at ``dps`` digits."""
        with mpmath.workdps(dps):
            if self.kind == "power":
                b = self.params[0]
                b_mp = mpmath.mpf(b.numerator) / b.denominator
                return [mpmath.power(int(r), -b_mp) for r in _power_ranks(eigenvalues_float)]
            return [mpmath.mpf(v) for v in self.squared_coefficients(eigenvalues_float)]


def _power_ranks(eigenvalues: np.ndarray) -> np.ndarray:
    """Rank ``1..d`` of each eigenvalue in decreasing order (ties: listed order)."""
    order = np.argsort(-np.asarray(eigenvalues, dtype=float), kind="stable")
    ranks = np.empty(len(order), dtype=float)
    ranks[order] = np.arange(1, len(order) + 1, dtype=float)
    return ranks


def teacher_profile(spec: Any = "flat") -> TeacherProfile:
    """Parse a teacher profile: ``flat``, ``power:b``, ``file:PATH``, an array or a :class:`TeacherProfile`.

    >>> teacher_profile("power:1")
    TeacherProfile('power:1')
    """
    parsed = _parse_common(spec, TeacherProfile, "flat", "teacher")
    if not isinstance(parsed, tuple):
        return parsed
    text, family, rest = parsed
    if family == "flat" and not rest:
        return TeacherProfile("flat")
    if family == "power" and rest:
        b = _exponent(rest, "teacher power:b")
        if b == 0:
            return TeacherProfile("flat")
        return TeacherProfile("power", (b,), spec=f"power:{rest.strip()}")
    if family == "file":
        values = _read_values(rest.strip(), "teacher")
        return TeacherProfile("values", values=values, spec=f"file:{rest.strip()}")
    raise InputError(f"teacher must be flat, power:b, file:PATH or an array of d values; got {text!r}")


# --------------------------------------------------------------------------
# The base measure of the chain
# --------------------------------------------------------------------------

#: lanes times atoms evaluated at once by the NumPy path
_CHUNK = 1 << 21


@dataclass(frozen=True)
class BaseMeasure:
    """The chain's base: atoms ``lambda_j`` with multiplicities ``n_j`` and teacher masses ``T_j``.

    ``df1_0(k) = sum_j n_j lambda_j / (lambda_j + k)`` and
    ``s_0(k) = sum_j T_j lambda_j^2 / (lambda_j + k)`` (module docstring;
    equal eigenvalues are merged into one atom).  ``lams``, ``counts`` and
    ``masses`` are NumPy float arrays (float, lane and complex paths) or
    tuples of mpf (the mpmath path).  ``rank`` is the number of positive
    eigenvalues (the rank of ``Sigma``).
    """

    lams: Any
    counts: Any
    masses: Any
    rank: Any

    @property
    def is_mp(self) -> bool:
        return not isinstance(self.lams, np.ndarray)

    def df1(self, kappa0) -> tuple[Any, Any]:
        """``(df1_0(kappa_0), d df1_0 / d kappa_0)``."""
        if self.is_mp:
            return self._mp_sums(kappa0, self.counts, 1)
        return self._numpy(kappa0, self.counts * self.lams)

    def signal(self, kappa0) -> tuple[Any, Any]:
        """``(s_0(kappa_0), d s_0 / d kappa_0)``."""
        if self.is_mp:
            return self._mp_sums(kappa0, self.masses, 2)
        return self._numpy(kappa0, self.masses * self.lams * self.lams)

    def _mp_sums(self, kappa0, weights, power):
        """``(sum_j w_j lambda_j^power / (lambda_j + k), -sum_j w_j lambda_j^power / (lambda_j + k)^2)`` in mpmath."""
        values, derivs = [], []
        for lam, w in zip(self.lams, weights):
            inv = 1 / (lam + kappa0)
            term = w * lam**power * inv
            values.append(term)
            derivs.append(term * inv)
        return mpmath.fsum(values), -mpmath.fsum(derivs)

    def _numpy(self, kappa0, weights):
        """``(sum_j w_j / (lambda_j + k), -sum_j w_j / (lambda_j + k)^2)`` for a scalar or an array ``k``."""
        lams = self.lams
        if np.ndim(kappa0) == 0:
            inv = 1.0 / (lams + kappa0)
            val, der = np.dot(weights, inv), -np.dot(weights, inv * inv)
            if isinstance(kappa0, (float, int)):
                return float(val), float(der)
            return val, der
        k = np.asarray(kappa0)
        flat = k.reshape(-1)
        dtype = np.result_type(flat.dtype, float)
        val = np.empty(flat.shape, dtype=dtype)
        der = np.empty(flat.shape, dtype=dtype)
        step = max(1, _CHUNK // max(1, lams.size))
        for start in range(0, flat.size, step):
            part = flat[start : start + step]
            inv = 1.0 / (lams[None, :] + part[:, None])
            val[start : start + step] = inv @ weights
            der[start : start + step] = -((inv * inv) @ weights)
        return val.reshape(k.shape), der.reshape(k.shape)

    def as_float(self) -> BaseMeasure:
        """The measure's numbers as NumPy floats."""
        if not self.is_mp:
            return self
        return BaseMeasure(
            np.array([float(x) for x in self.lams]),
            np.array([float(x) for x in self.counts]),
            np.array([float(x) for x in self.masses]),
            self.rank,
        )

    def moments(self, j: int):
        """``(1/d) sum_i lambda_i^j``, the ``j``-th moment of the eigenvalue distribution of ``Sigma``."""
        if self.is_mp:
            d = mpmath.fsum(self.counts)
            return mpmath.fsum(n * lam**j for lam, n in zip(self.lams, self.counts)) / d
        return float(np.dot(self.counts, self.lams**j) / np.sum(self.counts))

    def atoms(self) -> list:
        """``[(lambda_j, n_j / d)]``: the eigenvalue distribution of ``Sigma`` as point masses."""
        d = sum(self.counts)
        return [(lam, n / d) for lam, n in zip(self.lams, self.counts)]

    def as_mp(self) -> BaseMeasure:
        """The float measure's numbers as mpf (exactly)."""
        if self.is_mp:
            return self
        f = mpmath.mpf
        return BaseMeasure(
            tuple(f(float(x)) for x in self.lams),
            tuple(f(float(x)) for x in self.counts),
            tuple(f(float(x)) for x in self.masses),
            self.rank,
        )


def base_measure(spectrum: InputSpectrum, teacher: TeacherProfile, input_dim, dps: int | None = None):
    """The :class:`BaseMeasure` of ``Sigma`` and the teacher, or ``None`` for ``Sigma = I`` (any teacher).

    ``dps=None`` gives floats, else mpf at ``dps`` digits (cached).
    """
    if spectrum.is_identity:
        return None
    d = spectrum.dimension(input_dim)
    if spectrum.kind == "spiked":
        _check_spiked(spectrum, d)
    return _base_measure_cached(spectrum, teacher, d, dps)


@lru_cache(maxsize=64)
def _base_measure_cached(spectrum: InputSpectrum, teacher: TeacherProfile, d: int, dps: int | None):
    lam_f = _float_eigenvalues(spectrum, d)
    beta2_f = teacher.squared_coefficients(lam_f)
    # merge equal (eigenvalue, teacher coefficient) pairs: an atom per distinct eigenvalue
    keys, inverse = np.unique(lam_f, return_inverse=True)
    if dps is None:
        norm = math.fsum((beta2_f * lam_f).tolist())
        if not norm > 0:
            raise InputError("the teacher has no weight on the directions with positive variance: Var g = 0")
        counts = np.bincount(inverse, minlength=keys.size).astype(float)
        masses = np.bincount(inverse, weights=beta2_f / norm, minlength=keys.size)
        return BaseMeasure(keys, counts, masses, int(np.count_nonzero(lam_f > 0)))
    with mpmath.workdps(dps):
        lam_mp = _mp_eigenvalues(spectrum, d, dps)
        beta2_mp = teacher.squared_coefficients_mp(lam_f, dps)
        norm_mp = mpmath.fsum(b * x for b, x in zip(beta2_mp, lam_mp))
        if not norm_mp > 0:
            raise InputError("the teacher has no weight on the directions with positive variance: Var g = 0")
        first: dict[int, int] = {}
        counts_mp: list = []
        masses_mp: list = []
        lams_mp: list = []
        for i, j in enumerate(inverse.tolist()):
            if j not in first:
                first[j] = len(lams_mp)
                lams_mp.append(lam_mp[i])
                counts_mp.append(mpmath.mpf(0))
                masses_mp.append(mpmath.mpf(0))
            slot = first[j]
            counts_mp[slot] += 1
            masses_mp[slot] += beta2_mp[i] / norm_mp
        return BaseMeasure(tuple(lams_mp), tuple(counts_mp), tuple(masses_mp), int(np.count_nonzero(lam_f > 0)))


register_cache(_base_measure_cached.cache_clear)


def input_variance(spectrum: InputSpectrum, dps: int = 30):
    """``q_0 = tr Sigma / d`` (the mean eigenvalue; exactly 1 for the families) as mpf."""
    if spectrum.kind != "values":
        return mpmath.mpf(1)
    assert spectrum.values is not None
    with mpmath.workdps(dps):
        return mpmath.fsum(mpmath.mpf(v) for v in spectrum.values) / len(spectrum.values)


def variance_spread(spectrum: InputSpectrum, input_dim) -> float:
    """Relative spread of the first layer's pre-activation variances ``w_i^T Sigma w_i / d`` over Gaussian weights.

    ``sqrt(2 sum lambda^2) / sum lambda`` (the standard deviation over the
    mean): 0 for ``Sigma = I`` as ``d -> infinity``; it stays of order one
    for spectra dominated by a few directions (``power:a`` with ``a >= 1``),
    where the concentrated equations do not hold for Gaussian weights.
    """
    if spectrum.is_identity:
        return math.sqrt(2.0 / float(input_dim))
    lam = _float_eigenvalues(spectrum, spectrum.dimension(input_dim))
    return math.sqrt(2.0 * float(np.dot(lam, lam))) / float(np.sum(lam))
