"""The names the registries accept, as plain text (nothing heavy is imported).

``rfq list`` prints these without loading SymPy; ``tests/test_catalog.py``
checks that they are exactly the names the registries
(:mod:`rfq_theory.activations`, :mod:`rfq_theory.quantizers`,
:mod:`rfq_theory.expressions`) accept.
"""

from __future__ import annotations

__all__ = [
    "ACTIVATION_NAMES",
    "PARAMETERISED_ACTIVATIONS",
    "QUANTIZER_NAMES",
    "PARAMETERISED_QUANTIZERS",
    "EXPRESSION_FUNCTIONS",
]

#: built-in activations without a parameter
ACTIVATION_NAMES = (
    "abs",
    "cos",
    "cubic",
    "erf",
    "gelu",
    "linear",
    "quadratic",
    "relu",
    "sigmoid",
    "sign",
    "silu",
    "sin",
    "softplus",
    "tanh",
)
#: built-in activations that take one parameter, written ``name:<p>``
PARAMETERISED_ACTIVATIONS = ("hermite", "leaky_relu")
#: built-in quantizers without a parameter
QUANTIZER_NAMES = ("none", "sign", "sign-scaled")
#: the parameterised quantizer forms
PARAMETERISED_QUANTIZERS = ("ternary:<t>", "uniform:<bits>[:<clip>]")
#: functions a user expression may call
EXPRESSION_FUNCTIONS = (
    "Abs",
    "Heaviside",
    "Max",
    "Min",
    "abs",
    "cos",
    "erf",
    "exp",
    "log",
    "max",
    "min",
    "sign",
    "sin",
    "sqrt",
    "tanh",
)
