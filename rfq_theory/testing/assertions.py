"""Assertions that compare your own Monte Carlo draws with rfq-theory.

The rule is the project's (:mod:`rfq_theory.tolerance`): with ``T`` draws of
mean ``MC`` and standard error ``SE = std(ddof=1) / sqrt(T)``,

    |MC - theory| <= z_crit(T) * SE + C_FS * |theory| / m,

``z_crit(T)`` the Student-t quantile (``T - 1`` degrees of freedom) with the
two-sided coverage of 3 Gaussian standard deviations and ``m = min(d, k_1,
..., k_L, n)`` (the finite-size allowance; ``C_FS = 2``).  Paired draws use
the same rule on the differences, whose theory value is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..tolerance import C_FINITE_SIZE, MIN_VERDICT_DRAWS, Z_GAUSS, paired_verdict, standard_error, verdict

__all__ = ["TheoryMismatch", "assert_matches_theory", "assert_one_bit_equivalent", "assert_binary_weights"]


class TheoryMismatch(AssertionError):
    """A simulation disagrees with the prediction beyond what the rule allows.

    ``result`` holds the numbers of the failed comparison (the dict that the
    assertion returns on success).
    """

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def _values(draws, name: str) -> list[float]:
    try:
        values = [float(v) for v in np.asarray(draws, dtype=float).ravel()]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers (one per draw), got {draws!r}") from None
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name} must be finite, got {len(bad)} non-finite value(s) among {len(values)} draws")
    return values


def _check_draws(count: int, min_draws: int, name: str) -> None:
    if count < max(2, int(min_draws)):
        raise ValueError(
            f"{name} has {count} draw(s); a verdict needs at least {max(2, int(min_draws))} "
            f"(below that the Student-t critical value lets almost any deviation pass)"
        )


def _sizes(model, samples, sizes) -> tuple[float, ...] | None:
    if sizes is not None:
        out = tuple(float(s) for s in sizes)
        if not out or any(not (s > 0) for s in out):
            raise ValueError(f"sizes must be positive numbers, got {sizes!r}")
        return out
    if model is None:
        return (float(samples),) if samples is not None else None
    out = (float(model.input_dim),) + tuple(float(k) for k in model.widths)
    return out + ((float(samples),) if samples is not None else ())


def _theory_value(prediction, quantity: str) -> float:
    if isinstance(prediction, (int, float)) and not isinstance(prediction, bool):
        return float(prediction)
    if not hasattr(prediction, quantity):
        fields = [f for f in ("test_error", "train_error", "test_loss", "train_loss") if hasattr(prediction, f)]
        raise ValueError(
            f"quantity {quantity!r} is not an attribute of {type(prediction).__name__}; choose from {', '.join(fields)}"
        )
    return float(getattr(prediction, quantity))


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def assert_matches_theory(
    draws: Sequence[float],
    prediction,
    quantity: str = "test_error",
    *,
    model=None,
    sizes: Sequence[float] | None = None,
    z: float = Z_GAUSS,
    finite_size: float = C_FINITE_SIZE,
    min_draws: int = MIN_VERDICT_DRAWS,
) -> dict:
    """Assert that per-draw Monte Carlo values agree with a prediction.

    Parameters
    ----------
    draws:
        One value of ``quantity`` per independent draw of your simulation
        (network weights, data and noise redrawn each time).
    prediction:
        A :class:`~rfq_theory.Prediction` (:func:`rfq_theory.predict`), a
        :class:`~rfq_theory.GLMPrediction` (:func:`rfq_theory.predict_glm`)
        or a plain number.
    quantity:
        The attribute of ``prediction`` to compare (``test_error``,
        ``train_error``, ``test_loss``, ``train_loss``).
    model, sizes:
        The finite-size allowance uses ``m = min(sizes)``; by default
        ``sizes = (d, k_1, ..., k_L, n)`` from ``model`` and
        ``prediction.samples``.  Without either, no allowance is added.
    z, finite_size:
        The rule's constants (default: 3 Gaussian standard deviations and
        ``C_FS = 2``).
    min_draws:
        Fewest draws for a verdict; fewer raise ``ValueError``.

    Returns
    -------
    dict
        The comparison (``predicted``, ``measured``, ``se``, ``z``,
        ``z_crit``, ``allowance``, ``tolerance``, ``draws``).

    Raises
    ------
    TheoryMismatch
        An ``AssertionError``, when the rule fails.
    """
    values = _values(draws, "draws")
    _check_draws(len(values), min_draws, "draws")
    theory = _theory_value(prediction, quantity)
    if not math.isfinite(theory):
        raise ValueError(f"the predicted {quantity} is {theory} (not finite): there is nothing to compare with")
    samples = getattr(prediction, "samples", None)
    m_sizes = _sizes(model, samples, sizes)
    mean = math.fsum(values) / len(values)
    se = standard_error(values)
    v = verdict(mean, se, theory, len(values), m_sizes or (1.0,), z=z, c=finite_size if m_sizes else 0.0)
    tolerance = v["z_crit"] * se + v["allowance"]
    result = {
        "quantity": quantity,
        "predicted": theory,
        "measured": mean,
        "se": se,
        "z": v["z"],
        "z_crit": v["z_crit"],
        "allowance": v["allowance"],
        "tolerance": tolerance,
        "draws": len(values),
        "m": min(m_sizes) if m_sizes else None,
    }
    if v["status"] != "pass":
        m_text = f"{finite_size:g} * |predicted| / m (m = {min(m_sizes):g})" if m_sizes else "0 (no sizes given)"
        raise TheoryMismatch(
            f"{quantity}: measured {_fmt(mean)} +- {_fmt(se)} (SE over {len(values)} draws) vs predicted "
            f"{_fmt(theory)}: off by {_fmt(mean - theory)} ({_fmt(100 * (mean - theory) / theory if theory else math.inf)} %),"
            f" z = {v['z']:.3g}.\n"
            f"The rule allows |measured - predicted| <= z_crit * SE + allowance = {v['z_crit']:.3g} * {_fmt(se)} + "
            f"{_fmt(v['allowance'])} = {_fmt(tolerance)} (z_crit: Student-t, {len(values) - 1} degrees of freedom, "
            f"coverage of {z:g} sigma; allowance: {m_text}).",
            result,
        )
    return result


def assert_one_bit_equivalent(
    draws_full: Sequence[float],
    draws_onebit: Sequence[float],
    *,
    model=None,
    samples=None,
    sizes: Sequence[float] | None = None,
    z: float = Z_GAUSS,
    finite_size: float = C_FINITE_SIZE,
    min_draws: int = MIN_VERDICT_DRAWS,
    quantity: str = "test_error",
) -> dict:
    """Assert that paired draws of a model and its one-bit twin agree.

    Draw ``t`` of both lists must share everything but the quantizer (the
    same Gaussian ``W`` used as ``W`` and as ``sign(W)``, the same data):
    the differences ``full_t - onebit_t`` are then much less noisy than
    either list.  Their mean must satisfy
    ``|mean| <= z_crit(T) * SE + C_FS * max(|mean full|, |mean one-bit|) / m``
    (``m`` from ``sizes`` or ``model`` and ``samples``; no allowance without
    them).  Returns the comparison; raises :class:`TheoryMismatch`.
    """
    full = _values(draws_full, "draws_full")
    onebit = _values(draws_onebit, "draws_onebit")
    if len(full) != len(onebit):
        raise ValueError(
            f"paired draws need as many full-precision as one-bit values, got {len(full)} and {len(onebit)}"
        )
    _check_draws(len(full), min_draws, "draws_full")
    m_sizes = _sizes(model, samples, sizes)
    diffs = [a - b for a, b in zip(full, onebit)]
    mf, mo = math.fsum(full) / len(full), math.fsum(onebit) / len(onebit)
    v = paired_verdict(diffs, scale=max(abs(mf), abs(mo)), sizes=m_sizes, z=z, c=finite_size)
    tolerance = v["z_crit"] * v["se"] + v["allowance"]
    result = {
        "quantity": quantity,
        "mean_full": mf,
        "mean_onebit": mo,
        "mean_difference": v["mean"],
        "se": v["se"],
        "z": v["z"],
        "z_crit": v["z_crit"],
        "allowance": v["allowance"],
        "tolerance": tolerance,
        "draws": len(full),
    }
    if v["status"] != "pass":
        raise TheoryMismatch(
            f"{quantity}: full precision {_fmt(mf)} vs one-bit {_fmt(mo)}; paired difference {_fmt(v['mean'])} +- "
            f"{_fmt(v['se'])} (SE over {len(full)} pairs), z = {v['z']:.3g}.\n"
            f"The rule allows |difference| <= z_crit * SE + allowance = {v['z_crit']:.3g} * {_fmt(v['se'])} + "
            f"{_fmt(v['allowance'])} = {_fmt(tolerance)}: the one-bit network does not behave like its "
            f"full-precision twin.",
            result,
        )
    return result


def assert_binary_weights(weights, scale: float | None = 1.0) -> None:
    """Assert that every entry of ``weights`` (an array or a list of arrays) is ``+-scale``.

    ``scale=None`` accepts any single magnitude per matrix (``+-c``).
    """
    mats = weights if isinstance(weights, (list, tuple)) else [weights]
    for i, W in enumerate(mats):
        a = np.abs(np.asarray(W, dtype=float))
        if a.size == 0:
            raise ValueError(f"weights[{i}] is empty")
        c = float(a.flat[0]) if scale is None else float(scale)
        off = int(np.count_nonzero(a != c))
        if off:
            values = np.unique(np.asarray(W, dtype=float))
            shown = ", ".join(_fmt(x) for x in values[:6]) + (", ..." if values.size > 6 else "")
            raise TheoryMismatch(
                f"weights[{i}] is not one-bit: {off} of {a.size} entries differ from +-{_fmt(c)} "
                f"({values.size} distinct values: {shown})",
                {"matrix": i, "entries_off": off, "distinct": int(values.size)},
            )
