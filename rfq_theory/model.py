"""Immutable description of a deep random-features model."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Tuple

import mpmath

from .caches import register_cache
from .activations import get_activation
from .checks import InputError, check_positive
from .equivalence import broadcast_layers, propagate
from .quantizers import get_quantizer

__all__ = ["DeepRF"]


def _size(value, name):
    x = check_positive(value, name)
    if isinstance(value, str):
        return value.strip()
    return value


@dataclass(frozen=True)
class DeepRF:
    """A deep random-features model (theory notes, section 1).

    Parameters
    ----------
    input_dim:
        ``d = k_0``, any positive real (only ratios of sizes matter).
    widths:
        ``(k_1, ..., k_L)``, positive reals.
    activations:
        One activation spec per layer, or a single spec used for all.
    quantizers:
        One quantizer spec per layer, or a single spec for all (default:
        full precision, ``"none"``).

    Example
    -------
    >>> DeepRF(1000, (2000, 1500), ("tanh", "relu"), "sign")  # doctest: +ELLIPSIS
    DeepRF(input_dim=1000, widths=(2000, 1500), ...)
    """

    input_dim: object
    widths: Tuple
    activations: Tuple[str, ...]
    quantizers: Tuple[str, ...] = ("none",)

    def __post_init__(self):
        widths = self.widths
        if isinstance(widths, (int, float, str)):
            widths = (widths,)
        widths = tuple(widths)
        if not widths:
            raise InputError("widths must list at least one layer width")
        object.__setattr__(self, "input_dim", _size(self.input_dim, "input_dim"))
        object.__setattr__(
            self, "widths", tuple(_size(w, f"widths[{i}]") for i, w in enumerate(widths))
        )
        L = len(widths)
        acts = broadcast_layers(self.activations, L, "activations")
        quants = broadcast_layers(self.quantizers, L, "quantizers")
        # validate now (raises ActivationError / QuantizerError with a clear line)
        acts = tuple(get_activation(a).name for a in acts)
        quants = tuple(get_quantizer(q).name for q in quants)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "quantizers", quants)

    @property
    def depth(self) -> int:
        """Number of random layers ``L``."""
        return len(self.widths)

    def layers(self, digits=15):
        """Per-layer Gaussian-equivalent coefficients (cached)."""
        return _layers_cached(self.activations, self.quantizers, digits)

    def with_quantizers(self, quantizers) -> "DeepRF":
        """The same model with other quantizers (e.g. its one-bit twin)."""
        return replace(self, quantizers=quantizers)

    def with_widths(self, widths) -> "DeepRF":
        """The same model with other widths."""
        return replace(self, widths=widths)

    def sizes(self, dps=30):
        """``(k_0, k_1, ..., k_L)`` as mpf."""
        with mpmath.workdps(dps):
            return tuple(check_positive(k, "size", dps) for k in (self.input_dim,) + self.widths)


@lru_cache(maxsize=512)
def _layers_cached(activations, quantizers, digits):
    return propagate(list(activations), list(quantizers), digits)


register_cache(_layers_cached.cache_clear)
