"""rfq-theory: exact error predictions for one-bit quantized deep random-features models.

Public API
----------
- :class:`DeepRF` – immutable model description (sizes, activations, quantizers).
- :func:`predict` – asymptotic test/train error at any precision.
- :func:`sweep`, :func:`optimal_ridge`, :func:`one_bit_theorem` – derived quantities.
- :func:`coefficients`, :func:`exact_coefficients`, :func:`propagate` – Gaussian-equivalent
  coefficients of activations and layers.
- :func:`get_activation`, :func:`get_quantizer`, :class:`Quantizer` – registries.

Notation and equations: ``docs/theory.md``.
"""

from .activations import Activation, ActivationError, builtin_activations, get_activation
from .checks import InputError
from .coefficients import Coefficients, NotExactError, coefficients, exact_coefficients
from .equivalence import LayerCoefficients, propagate, propagate_exact
from .expressions import ExpressionError, parse_expression
from .gaussian import GaussianIntegralError
from .model import DeepRF
from .quantizers import Quantizer, QuantizerError, builtin_quantizers, get_quantizer
from .solver import Prediction, SolverError, predict
from .sweeps import TheoremResult, one_bit_theorem, optimal_ridge, sweep

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "ActivationError",
    "Coefficients",
    "DeepRF",
    "ExpressionError",
    "GaussianIntegralError",
    "InputError",
    "LayerCoefficients",
    "NotExactError",
    "Prediction",
    "Quantizer",
    "QuantizerError",
    "SolverError",
    "TheoremResult",
    "builtin_activations",
    "builtin_quantizers",
    "coefficients",
    "exact_coefficients",
    "get_activation",
    "get_quantizer",
    "one_bit_theorem",
    "optimal_ridge",
    "parse_expression",
    "predict",
    "propagate",
    "propagate_exact",
    "sweep",
]
