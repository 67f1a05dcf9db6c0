"""Immutable description of a deep random-features model."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .activations import get_activation
from .caches import register_cache
from .checks import InputError, check_positive
from .equivalence import broadcast_layers, propagate
from .input_spectrum import InputSpectrum, TeacherProfile, base_measure, input_spectrum, input_variance, teacher_profile
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
    input_spectrum:
        Eigenvalues of the input covariance ``Sigma`` (``docs/theory.md``,
        section 8): ``"identity"`` (default), ``"power:a"``,
        ``"spiked:r:v"``, ``"file:PATH"``, an array of ``d`` eigenvalues or an
        :class:`~rfq_theory.input_spectrum.InputSpectrum`.  Families need a
        whole ``input_dim``; an array fixes it.
    teacher:
        Squared teacher coefficients in the eigenbasis of ``Sigma``:
        ``"flat"`` (default), ``"power:b"``, ``"file:PATH"`` or an array
        (rescaled to unit signal variance).  Irrelevant for ``Sigma = I``.

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
    input_spectrum: InputSpectrum = InputSpectrum("identity")
    teacher: TeacherProfile = TeacherProfile("flat")
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
        spectrum = input_spectrum(self.input_spectrum)
        teacher = teacher_profile(self.teacher)
        if not spectrum.is_identity:
            d = spectrum.dimension(self.input_dim)
            if spectrum.kind == "values":
                object.__setattr__(self, "input_dim", d)
            base_measure(spectrum, teacher, d)  # validates the pair (sizes, spikes, Var g > 0)
        object.__setattr__(self, "input_spectrum", spectrum)
        object.__setattr__(self, "teacher", teacher)

    @property
    def depth(self) -> int:
        """Number of random layers ``L``."""
        return len(self.widths)

    @property
    def structured(self) -> bool:
        """True when the input covariance is not the identity."""
        return not self.input_spectrum.is_identity

    def layers(self, digits=15):
        """Per-layer Gaussian-equivalent coefficients (cached); the first layer sees ``q_0 = tr Sigma / d``."""
        # only given eigenvalues can have a mean other than 1; the families (and Sigma = I) share one cache entry
        given = self.input_spectrum if self.input_spectrum.kind == "values" else None
        return _layers_cached(self.activation_objects, self.quantizer_objects, digits, given)

    def notes(self) -> list[str]:
        """Warnings about where the model leaves the equations' assumptions (one line each; empty when none).

        - a layer whose activation is even for its input (``mu1 = 0``)
          forgets the input: the features carry no linear information;
        - an input spectrum dominated by a few directions: the first layer's
          pre-activation variances ``w_i^T Sigma w_i / d`` spread by more than
          :data:`~rfq_theory.input_spectrum.HEAVY_SPREAD` over Gaussian-weight
          neurons, while the equations take them equal to ``tr Sigma / d``.
        """
        import math

        from .input_spectrum import HEAVY_SPREAD, variance_spread

        out = []
        for layer in self.layers(15):
            mu1, mu_star = float(layer.mu1), float(layer.mu_star)
            if abs(mu1) <= 1e-10 * math.hypot(mu1, mu_star) or (mu1 == 0 and mu_star == 0):
                out.append(
                    f"layer {layer.index} ({layer.activation}) has mu1 = 0 (an even activation): the layer "
                    "forgets its input, so the features carry no linear information about it"
                )
        if self.structured:
            spread = variance_spread(self.input_spectrum, self.input_dim)
            if spread > HEAVY_SPREAD:
                out.append(
                    f"input spectrum {self.input_spectrum.spec} is dominated by a few directions: the first "
                    f"layer's pre-activation variances spread by {spread:.0%} over Gaussian-weight neurons "
                    f"(above {HEAVY_SPREAD:.0%}), where the equations take them equal (exact only for +-1 weights "
                    "and Sigma diagonal in the input basis); see the structured-data page for measured deviations"
                )
        return out

    def base_measure(self, dps: int | None = None):
        """The chain's base for the input spectrum and teacher (``None`` for ``Sigma = I``).

        ``dps=None`` gives floats, else mpf at ``dps`` digits
        (:func:`rfq_theory.input_spectrum.base_measure`).
        """
        return base_measure(self.input_spectrum, self.teacher, self.input_dim, dps)

    def with_quantizers(self, quantizers) -> DeepRF:
        """The same model with other quantizers (e.g. its one-bit twin)."""
        return DeepRF(
            self.input_dim, self.widths, self.activation_objects, quantizers, self.input_spectrum, self.teacher
        )

    def with_widths(self, widths) -> DeepRF:
        """The same model with other widths."""
        return DeepRF(
            self.input_dim, widths, self.activation_objects, self.quantizer_objects, self.input_spectrum, self.teacher
        )

    def sizes(self, dps=30):
        """``(k_0, k_1, ..., k_L)`` as mpf."""
        with mpmath.workdps(dps):
            return tuple(check_positive(k, "size", dps) for k in (self.input_dim,) + self.widths)


@lru_cache(maxsize=512)
def _layers_cached(activations, quantizers, digits, given_spectrum):
    if given_spectrum is None:
        return propagate(list(activations), list(quantizers), digits)  # objects: hashed by identity
    variance = input_variance(given_spectrum, digits + 10)
    return propagate(list(activations), list(quantizers), digits, input_variance=variance)


register_cache(_layers_cached.cache_clear)
