"""Tools for testing your own simulations against rfq-theory's predictions.

Assertions (NumPy and SciPy only):

- :func:`assert_matches_theory` – per-draw Monte Carlo values against a
  :class:`~rfq_theory.Prediction` or :class:`~rfq_theory.GLMPrediction`,
  with the project's pass/fail rule (:mod:`rfq_theory.tolerance`).
- :func:`assert_one_bit_equivalent` – paired draws of a model and its
  one-bit twin (the same Gaussian ``W`` used as ``W`` and as ``sign(W)``).
- :func:`assert_binary_weights` – a weight matrix really is ``+-c``.

Hypothesis strategies (need the ``testing`` extra, ``pip install
'rfq-theory[testing]'``; imported on first use): :func:`models`,
:func:`activations`, :func:`quantizers`, :func:`operating_points`,
:func:`samples`, :func:`ridges`, :func:`noises`, :func:`labels_and_losses`,
and the :class:`OperatingPoint` they draw.

Every name is imported on first use.  The pytest plugin
(:mod:`rfq_theory.testing.plugin`, loaded automatically by pytest)
adds the ``rfq_simulation`` marker and the ``rfq-simulation`` Hypothesis
profile.  Guide and a complete example: ``docs/testing.md``.
"""

from __future__ import annotations

_ASSERTIONS = {"TheoryMismatch", "assert_binary_weights", "assert_matches_theory", "assert_one_bit_equivalent"}
_STRATEGIES = {
    "OperatingPoint",
    "activations",
    "labels_and_losses",
    "models",
    "noises",
    "operating_points",
    "quantizers",
    "ridges",
    "samples",
    "SAFE_ACTIVATIONS",
    "EVEN_ACTIVATIONS",
    "QUANTIZER_FAMILIES",
}


def __getattr__(name):
    # everything is imported on first use: the pytest plugin loads this package in every pytest run
    if name in _ASSERTIONS:
        from . import assertions

        return getattr(assertions, name)
    if name in _STRATEGIES:
        from . import strategies

        return getattr(strategies, name)
    if name == "PROFILE":
        from .plugin import PROFILE

        return PROFILE
    if name == "register_profile":
        from .plugin import register_profile

        return register_profile
    raise AttributeError(f"module 'rfq_theory.testing' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _ASSERTIONS | _STRATEGIES | {"PROFILE", "register_profile"})


__all__ = [
    "TheoryMismatch",
    "assert_binary_weights",
    "assert_matches_theory",
    "assert_one_bit_equivalent",
    "OperatingPoint",
    "activations",
    "labels_and_losses",
    "models",
    "noises",
    "operating_points",
    "quantizers",
    "ridges",
    "samples",
    "PROFILE",
    "register_profile",
]
