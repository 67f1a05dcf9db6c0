"""Hypothesis strategies for deep random-features models and operating points.

Requires Hypothesis (the ``testing`` extra).  By default every strategy stays
where the solver answers quickly and accurately and where a small simulation
agrees with the proportional-limit theory:

- activations with ``mu1 != 0`` (an even activation such as ``abs`` or
  ``quadratic`` has ``mu1 = 0``: the features forget the input; opt in with
  ``allow_even=True``);
- consecutive sizes whose ratio ``k_l / k_{l-1}`` is bounded and not close
  to 1 (near-square layers sit at a hard spectral edge);
- ridges ``lambda >= 1e-2`` and sample sizes ``n`` away from the
  interpolation threshold ``n = k_L``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hypothesis import assume
from hypothesis import strategies as st

from ..model import DeepRF

__all__ = [
    "SAFE_ACTIVATIONS",
    "EVEN_ACTIVATIONS",
    "QUANTIZER_FAMILIES",
    "HINGE_MAX_RIDGE",
    "OperatingPoint",
    "activations",
    "quantizers",
    "models",
    "samples",
    "ridges",
    "noises",
    "labels_and_losses",
    "operating_points",
]

#: Activations with ``mu1 != 0`` and closed-form or fast coefficients.
SAFE_ACTIVATIONS: tuple[str, ...] = (
    "tanh",
    "erf",
    "relu",
    "leaky_relu:0.2",
    "gelu",
    "silu",
    "sigmoid",
    "softplus",
    "sin",
    "linear",
)
#: Even activations (``mu1 = 0``): drawn only with ``allow_even=True``.
EVEN_ACTIVATIONS: tuple[str, ...] = ("abs", "quadratic", "cos")
#: Quantizer families: full precision, one bit, scaled one bit, ternary, uniform.
QUANTIZER_FAMILIES: tuple[str, ...] = ("none", "sign", "sign-scaled", "ternary", "uniform")

_TERNARY_THRESHOLDS = ("0.25", "0.5", "1")
_UNIFORM_BITS = (2, 3, 4)
_RATIOS = (0.5, 0.6, 0.75, 0.8, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
#: Largest ridge drawn for hinge-loss points (see :func:`operating_points`).
HINGE_MAX_RIDGE = 0.2
_LOSSES = {"square": ("regression", "sign"), "logistic": ("sign",), "hinge": ("sign",)}


def _bounds(value, name, low=None):
    if isinstance(value, (int, float)):
        value = (value, value)
    lo, hi = value
    if not (lo <= hi) or (low is not None and lo < low):
        raise ValueError(
            f"{name} must be a number or (min, max) with {low if low is not None else ''} <= min <= max, got {value!r}"
        )
    return lo, hi


def activations(families: Sequence[str] | None = None, allow_even: bool = False) -> st.SearchStrategy[str]:
    """Activation spec strings from ``families`` (default :data:`SAFE_ACTIVATIONS`)."""
    names = list(SAFE_ACTIVATIONS if families is None else families)
    if allow_even:
        names += [a for a in EVEN_ACTIVATIONS if a not in names]
    elif families is not None:
        even = [a for a in names if a in EVEN_ACTIVATIONS]
        if even:
            raise ValueError(f"activations {even} are even (mu1 = 0); pass allow_even=True to draw them")
    if not names:
        raise ValueError("activations needs at least one family")
    return st.sampled_from(names)


def quantizers(families: Sequence[str] | None = None) -> st.SearchStrategy[str]:
    """Quantizer spec strings from ``families`` (default :data:`QUANTIZER_FAMILIES`).

    ``ternary`` draws a threshold from 0.25, 0.5, 1 and ``uniform`` 2 to 4
    bits; any other entry is used as a spec string as it is.
    """
    names = list(QUANTIZER_FAMILIES if families is None else families)
    if not names:
        raise ValueError("quantizers needs at least one family")
    options = []
    for name in names:
        if name == "ternary":
            options.append(st.sampled_from([f"ternary:{t}" for t in _TERNARY_THRESHOLDS]))
        elif name == "uniform":
            options.append(st.sampled_from([f"uniform:{b}" for b in _UNIFORM_BITS]))
        else:
            options.append(st.just(name))
    return st.one_of(options)


def models(
    *,
    depth: int | tuple[int, int] = (1, 3),
    input_dim: int | tuple[int, int] = (60, 200),
    width_ratio: tuple[float, float] = (0.5, 3.0),
    activations: Sequence[str] | None = None,
    quantizers: Sequence[str] | None = None,
    allow_even: bool = False,
    min_width: int = 20,
    max_width: int = 800,
) -> st.SearchStrategy[DeepRF]:
    """Drawn :class:`~rfq_theory.DeepRF` models with whole-number sizes.

    ``depth`` and ``input_dim`` are a value or ``(min, max)``; each width is
    the previous size times a ratio from ``0.5, 0.6, 0.75, 0.8, 1.25, 1.5,
    1.75, 2, 2.5, 3`` inside ``width_ratio`` (never close to 1), kept within
    ``[max(min_width, d/4), min(max_width, 4 d)]``.  ``activations`` and ``quantizers`` list the families per
    layer (see :func:`activations` and :func:`quantizers`).
    """
    lo_depth, hi_depth = _bounds(depth, "depth", 1)
    lo_d, hi_d = _bounds(input_dim, "input_dim", 1)
    lo_r, hi_r = _bounds(width_ratio, "width_ratio", 0)
    ratios = [r for r in _RATIOS if lo_r <= r <= hi_r]
    if not ratios:
        raise ValueError(f"width_ratio {width_ratio!r} contains none of the ratios {_RATIOS}")
    act = globals()["activations"](activations, allow_even)
    quant = globals()["quantizers"](quantizers)

    @st.composite
    def draw(draw_fn) -> DeepRF:
        L = draw_fn(st.integers(lo_depth, hi_depth))
        d = draw_fn(st.integers(lo_d, hi_d))
        widths, prev = [], d
        lo_k, hi_k = max(min_width, math.ceil(d / 4)), min(max_width, 4 * d)
        for _ in range(L):
            options = sorted({round(prev * r) for r in ratios} & set(range(lo_k, hi_k + 1)))
            options = [k for k in options if abs(math.log(k / prev)) >= math.log(1.2)]
            assume(options)  # no allowed width from here: draw another model
            k = draw_fn(st.sampled_from(options))
            widths.append(k)
            prev = k
        acts = [draw_fn(act) for _ in range(L)]
        quants = [draw_fn(quant) for _ in range(L)]
        return DeepRF(d, tuple(widths), tuple(acts), tuple(quants))

    return draw()


def samples(model: DeepRF, ratio: tuple[float, float] = (0.3, 3.0), gap: float = 0.3) -> st.SearchStrategy[int]:
    """Sample sizes ``n = r k_L`` with ``r`` in ``ratio``, ``|log r| >= log(1 + gap)`` (away from ``n = k_L``) and ``n >= max(20, d/4)``."""
    lo, hi = _bounds(ratio, "ratio", 0)
    k = float(model.widths[-1])
    edge = math.log1p(gap)
    choices = sorted(
        {max(2, round(k * r)) for r in (0.3, 0.4, 0.5, 0.6, 0.7, 1.5, 2.0, 2.5, 3.0, 4.0) if lo <= r <= hi}
    )
    floor = max(20.0, float(model.input_dim) / 4)
    choices = [n for n in choices if abs(math.log(n / k)) >= edge and n >= floor]
    if not choices:
        raise ValueError(f"no sample size in ratio {ratio!r} is at least {gap:g} away from k_L = {k:g}")
    return st.sampled_from(choices)


def ridges(low: float = 1e-2, high: float = 0.5) -> st.SearchStrategy[float]:
    """Ridges ``lambda`` log-uniform in ``[low, high]``, rounded to 3 significant digits."""
    lo, hi = _bounds((low, high), "ridges", 0)
    if lo <= 0:
        raise ValueError(f"ridges needs low > 0, got {low!r}")
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(f"{10**e:.3g}"))


def noises(high: float = 0.5) -> st.SearchStrategy[float]:
    """Label-noise variances ``Delta``: 0 or up to ``high`` (rounded to 2 significant digits)."""
    if not high >= 0:
        raise ValueError(f"noises needs high >= 0, got {high!r}")
    return st.one_of(st.just(0.0), st.floats(0.0, high).map(lambda x: float(f"{x:.2g}")))


def labels_and_losses(losses: Sequence[str] = ("square", "logistic", "hinge")) -> st.SearchStrategy[tuple[str, str]]:
    """``(labels, loss)`` pairs the theory covers: square loss on regression or sign labels, logistic and hinge on sign labels."""
    pairs = []
    for loss in losses:
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {', '.join(_LOSSES)}, got {loss!r}")
        pairs += [(lab, loss) for lab in _LOSSES[loss]]
    return st.sampled_from(pairs)


@dataclass(frozen=True)
class OperatingPoint:
    """Where a model is trained and evaluated.

    ``labels="regression", loss="square"`` is ridge regression
    (:func:`rfq_theory.predict`); anything else is a convex-loss readout
    (:func:`rfq_theory.predict_glm`).
    """

    samples: int
    ridge: float
    noise: float = 0.0
    labels: str = "regression"
    loss: str = "square"

    def predict(self, model: DeepRF):
        """The prediction for ``model`` at this point (float path)."""
        if self.labels == "regression" and self.loss == "square":
            from ..solver import predict

            return predict(model, self.samples, self.ridge, self.noise)
        from ..glm import predict_glm

        return predict_glm(model, self.samples, self.ridge, self.noise, labels=self.labels, loss=self.loss)


def operating_points(
    model: DeepRF,
    *,
    sample_ratio: tuple[float, float] = (0.3, 3.0),
    ridge: tuple[float, float] = (1e-2, 0.5),
    noise: float = 0.5,
    losses: Sequence[str] | None = None,
) -> st.SearchStrategy[OperatingPoint]:
    """Operating points for ``model``: ridge regression, or a convex loss when ``losses`` is given.

    Hinge-loss points keep ``lambda <= HINGE_MAX_RIDGE``: at larger ridges the
    hinge saddle-point iteration of :func:`rfq_theory.predict_glm` does not
    converge for some models whose last layer is narrow.
    """
    pairs = st.just(("regression", "square")) if losses is None else labels_and_losses(losses)
    lo, hi = _bounds(ridge, "ridge", 0)
    hinge_hi = min(hi, HINGE_MAX_RIDGE)

    @st.composite
    def point(draw_fn) -> OperatingPoint:
        labels, loss = draw_fn(pairs)
        n = draw_fn(samples(model, sample_ratio))
        delta = draw_fn(noises(noise))
        top = hinge_hi if loss == "hinge" and hinge_hi >= lo else hi
        return OperatingPoint(n, draw_fn(ridges(lo, top)), delta, labels, loss)

    return point()
