"""Pass/fail rule for Monte Carlo vs theory, and proportional-regime warnings.

The rule itself (``|MC - theory| <= z_crit(T) * SE + C_FS * |theory| / m``)
lives in :mod:`rfq_theory.tolerance` and is re-exported here; this module
adds :func:`regime_warnings`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rfq_theory.tolerance import (
    ABSOLUTE_FLOOR,
    C_FINITE_SIZE,
    MIN_VERDICT_DRAWS,
    Z_GAUSS,
    critical_z,
    finite_size_allowance,
    verdict,
)

__all__ = [
    "Z_GAUSS",
    "C_FINITE_SIZE",
    "ABSOLUTE_FLOOR",
    "MIN_VERDICT_DRAWS",
    "critical_z",
    "finite_size_allowance",
    "verdict",
    "regime_warnings",
]


def regime_warnings(input_dim: float, widths: Sequence[float], samples: float) -> list[str]:
    """Warnings for sizes far from the proportional regime: ``>= d^2/10`` or ``<= 10``."""
    d = float(input_dim)
    out = []
    named = (
        [("input_dim", d)] + [(f"widths[{i}]", float(k)) for i, k in enumerate(widths)] + [("samples", float(samples))]
    )
    for name, value in named:
        if value <= 10:
            out.append(f"{name} = {value:g} <= 10: far below the proportional regime")
        elif name != "input_dim" and value >= d * d / 10:
            out.append(f"{name} = {value:g} >= d^2/10 = {d * d / 10:g}: far outside the proportional regime")
    return out
