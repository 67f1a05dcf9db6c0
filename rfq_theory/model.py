"""Immutable description of a deep random-features model."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .activations import get_activation
from .caches import register_cache
from .checks import InputError, check_positive
from .equivalence import broadcast_layers, propagate
from .precision import mp as mpmath
from .quantizers import get_quantizer

__all__ = ["DeepRF"]


def _size(value, name):
    """A positive size (validated: finite, ``> 0``, literal magnitude within the limits of :mod:`rfq_theory.checks`)."""
    check_positive(value, name)
    if isinstance(value, str):
        return value.strip()
    return value


@dataclass(frozen=True)
class DeepRF:
    """A deep random-features model (``docs/theory.md``, section 1).

    Parameters
    ----------
    input_dim:
        ``d = k_0``, any positive real (only ratios of sizes matter).
    widths:
        ``(k_1, ..., k_L)``, positive reals.
    activations:
        One activation per layer, or a single one used for all: spec
        strings or :class:`~rfq_theory.activations.Activation` objects.
    quantizers:
        One quantizer per layer, or a single one for all (default: full
        precision, ``"none"``): spec strings (``"sign"``,
        ``"expr:sign(g)"``...) or :class:`~rfq_theory.quantizers.Quantizer`
        objects (``Quantizer.piecewise(...)``, ``Quantizer.custom(...)``).

    After construction ``activations`` and ``quantizers`` hold display
    names (spec strings where one exists, e.g. ``"expr:sign(g)"``), and
    ``activation_objects`` / ``quantizer_objects`` the objects every
    computation uses (names are never looked up again).

    Example
    -------
    >>> DeepRF(1000, (2000, 1500), ("tanh", "relu"), "sign")  # doctest: +ELLIPSIS
    DeepRF(input_dim=1000, widths=(2000, 1500), ...)
    """

    input_dim: int
    widths: tuple
    activations: tuple[str, ...]
    quantizers: tuple[str, ...] = ("none",)
    activation_objects: tuple = field(default=(), init=False, repr=False, compare=False)
    quantizer_objects: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        widths = self.widths
        if isinstance(widths, (int, float, str)):
            widths = (widths,)
        if not isinstance(widths, (tuple, list)):
            raise TypeError(
                f"widths must be a number or a list/tuple of numbers, got {widths!r} of type {type(widths).__name__}"
            )
        widths = tuple(widths)
        if not widths:
            raise InputError("widths must list at least one layer width")
        object.__setattr__(self, "input_dim", _size(self.input_dim, "input_dim"))
        object.__setattr__(self, "widths", tuple(_size(w, f"widths[{i}]") for i, w in enumerate(widths)))
        L = len(widths)
        acts = broadcast_layers(self.activations, L, "activations")
        quants = broadcast_layers(self.quantizers, L, "quantizers")
        # validate now (raises ActivationError / QuantizerError with a clear line)
        act_objs = tuple(get_activation(a) for a in acts)
        quant_objs = tuple(get_quantizer(q) for q in quants)
        object.__setattr__(self, "activation_objects", act_objs)
        object.__setattr__(self, "quantizer_objects", quant_objs)
        object.__setattr__(self, "activations", tuple(a.name for a in act_objs))
        object.__setattr__(self, "quantizers", tuple(q.spec or q.name for q in quant_objs))

    @property
    def depth(self) -> int:
        """Number of random layers ``L``."""
        return len(self.widths)

    def layers(self, digits=15):
        """Per-layer Gaussian-equivalent coefficients (cached)."""
        return _layers_cached(self.activation_objects, self.quantizer_objects, digits)

    def with_quantizers(self, quantizers) -> DeepRF:
        """The same model with other quantizers (e.g. its one-bit twin)."""
        return DeepRF(self.input_dim, self.widths, self.activation_objects, quantizers)

    def with_widths(self, widths) -> DeepRF:
        """The same model with other widths."""
        return DeepRF(self.input_dim, widths, self.activation_objects, self.quantizer_objects)

    def sizes(self, dps=30):
        """``(k_0, k_1, ..., k_L)`` as mpf."""
        with mpmath.workdps(dps):
            return tuple(check_positive(k, "size", dps) for k in (self.input_dim,) + self.widths)


@lru_cache(maxsize=512)
def _layers_cached(activations, quantizers, digits):
    return propagate(list(activations), list(quantizers), digits)  # objects: hashed by identity


register_cache(_layers_cached.cache_clear)
